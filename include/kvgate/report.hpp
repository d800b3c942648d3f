// `kvgate report`: an experiment's results files in, its figures (with their gnuplot scripts and
// data) and summary.md out, for whichever phases have results. Every input is read and validated,
// and every output drawn, before any output replaces an existing file.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "kvgate/experiment.hpp"
#include "kvgate/records.hpp"
#include "kvgate/report_curve.hpp"
#include "kvgate/report_baseline.hpp"
#include "kvgate/report_files.hpp"
#include "kvgate/report_fleet.hpp"
#include "kvgate/report_markdown.hpp"
#include "kvgate/report_plot.hpp"
#include "kvgate/results_json.hpp"

namespace kvgate {

inline constexpr const char* summary_file_name = "summary.md";

// The files write_reports() writes for an experiment, by name.
inline std::vector<std::string> report_file_names(const Experiment& e) {
    std::vector<std::string> names;
    std::vector<std::string> figures =
        e.kind == ExperimentKind::curve ? std::vector<std::string>{curve_figure_name(e)}
                                        : std::vector<std::string>{results_figure_name(e), phase_comparison_figure_name(e)};
    if (has_fleet_phase(e)) figures.push_back(placement_figure_name(e));
    for (const auto& p : e.phases) figures.push_back(baseline_figure_name(p));
    for (const std::string& figure : figures)
        for (const char* ext : {".png", ".gp", ".dat"}) names.push_back(figure + ext);
    names.push_back(summary_file_name);
    return names;
}

// Removes every experiment's results files and reports from `dir`, so that a report drawn after
// this run shows only what this run wrote (a skipped phase must not show an earlier run's verdict).
inline std::vector<std::string> clear_results(const std::filesystem::path& dir) {
    std::vector<std::string> removed;
    for (const auto& e : experiments()) {
        std::vector<std::string> names = report_file_names(e);
        for (const auto& p : e.phases) names.push_back(p.results_file);
        for (const auto& name : names) {
            std::error_code ec;
            if (std::filesystem::remove(dir / name, ec)) removed.push_back(name);
            if (ec) throw ReportError((dir / name).string() + ": cannot remove: " + ec.message());
        }
    }
    return removed;
}

namespace report_detail {

inline bool has_results(const std::filesystem::path& dir, const Experiment& e) {
    for (const auto& p : e.phases) {
        std::error_code ec;
        if (std::filesystem::exists(results_path(dir, p), ec) || ec) return true;
    }
    return false;
}

inline const Experiment* curve_experiment() {
    for (const auto& e : experiments())
        if (e.kind == ExperimentKind::curve) return &e;
    return nullptr;
}

// Experiment 2's section of summary.md, where its results are in `in_dir`; else empty.
inline std::string curve_section(const std::filesystem::path& in_dir) {
    const Experiment* e = curve_experiment();
    if (!e || !has_results(in_dir, *e)) return "";
    const CurveFile f = read_curve_file(results_path(in_dir, e->phases.front()));
    return curve_markdown(*e, f, analyse_curve(f.cells, f.confidence), curve_phase1(in_dir));
}

// Experiment 2: its figure; summary.md too when no hit/miss results share the directory (when
// they do, their summary carries Experiment 2's section).
inline void write_curve_reports(const std::filesystem::path& in_dir, const std::filesystem::path& out_dir,
                                const Experiment& experiment) {
    const CurveFile f = read_curve_file(results_path(in_dir, experiment.phases.front()));
    const CurveAnalysis a = analyse_curve(f.cells, f.confidence);
    const auto phase1 = curve_phase1(in_dir);
    bool shares_summary = false;
    for (const auto& e : experiments()) shares_summary = shares_summary || (e.kind == ExperimentKind::hit_miss && has_results(in_dir, e));
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) throw ReportError(out_dir.string() + ": cannot create the report directory: " + ec.message());
    StagedFiles staged;
    stage_figure(curve_figure(experiment, f, a, phase1), out_dir, staged);
    if (!shares_summary)
        staged.write(out_dir / summary_file_name, "# kvgate report\n" + curve_markdown(experiment, f, a, phase1));
    staged.commit();
}

}  // namespace report_detail

inline void write_reports(const std::filesystem::path& in_dir, const std::filesystem::path& out_dir,
                          const Experiment& experiment = default_experiment()) {
    if (experiment.kind == ExperimentKind::curve) return report_detail::write_curve_reports(in_dir, out_dir, experiment);
    std::vector<PhaseResult> phases;
    std::string expected;
    for (const auto& phase : experiment.phases) {
        const std::filesystem::path file = results_path(in_dir, phase);
        expected += (expected.empty() ? "" : ", ") + phase.results_file;
        std::error_code ec;
        // A file that is there but unreadable is read anyway, so its error is reported.
        if (std::filesystem::exists(file, ec) || ec) phases.push_back(read_results_file(file, &phase));
    }
    if (phases.empty())
        throw ReportError(in_dir.string() + ": none of " + expected +
                          " is here — run a phase first, or point the report at the directory it wrote to");

    std::vector<Figure> figures = {results_figure(experiment, phases), phase_comparison_figure(experiment, phases)};
    if (has_fleet_phase(experiment)) figures.push_back(placement_figure(experiment, phases));
    for (const auto& p : phases)
        if (p.baseline) figures.push_back(baseline_figure(p));
    std::vector<std::string> images;
    for (const auto& f : figures) images.push_back(f.name + ".png");
    const std::string summary = summary_markdown(phases, images) + report_detail::curve_section(in_dir);

    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) throw ReportError(out_dir.string() + ": cannot create the report directory: " + ec.message());
    StagedFiles staged;
    for (const auto& f : figures) stage_figure(f, out_dir, staged);
    staged.write(out_dir / summary_file_name, summary);
    staged.commit();
}

// Reports for every experiment that has a results file in `in_dir`; returns those experiments.
inline std::vector<const Experiment*> write_all_reports(const std::filesystem::path& in_dir,
                                                        const std::filesystem::path& out_dir) {
    std::vector<const Experiment*> reported;
    std::string expected;
    for (const auto& e : experiments()) {
        bool any = false;
        for (const auto& p : e.phases) {
            std::error_code ec;
            any = any || std::filesystem::exists(results_path(in_dir, p), ec) || ec;
            expected += (expected.empty() ? "" : ", ") + p.results_file;
        }
        if (!any) continue;
        write_reports(in_dir, out_dir, e);
        reported.push_back(&e);
    }
    if (reported.empty())
        throw ReportError(in_dir.string() + ": none of " + expected +
                          " is here — run a phase first, or point the report at the directory it wrote to");
    return reported;
}

}  // namespace kvgate
