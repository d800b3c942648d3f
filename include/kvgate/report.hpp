// `kvgate report`: a directory's results files in; every experiment's figures (with their gnuplot
// scripts and data) and one summary.md for all of them out, for whichever phases have results.
// Every input is read and validated, and every output drawn, before any output replaces an
// existing file.
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

inline std::string results_file_list(const std::vector<Experiment>& list) {
    std::string out;
    for (const auto& e : list)
        for (const auto& p : e.phases) out += (out.empty() ? "" : ", ") + p.results_file;
    return out;
}

inline ReportError no_results(const std::filesystem::path& in_dir, const std::vector<Experiment>& list) {
    return ReportError(in_dir.string() + ": none of " + results_file_list(list) +
                       " is here — run a phase first, or point the report at the directory it wrote to");
}

// One experiment's part of the report, read and drawn up but not yet written.
struct ExperimentReport {
    std::vector<Figure> figures;
    std::string markdown;             // its sections of summary.md
    std::vector<ResultLine> results;  // one per results file, for the overview
};

inline ExperimentReport curve_report(const std::filesystem::path& in_dir, const Experiment& e) {
    const PhaseDescriptor& phase = e.phases.front();
    const CurveFile f = read_curve_file(results_path(in_dir, phase));
    const CurveAnalysis a = analyse_curve(f.cells, f.confidence);
    const auto phase1 = curve_phase1(in_dir);
    return {{curve_figure(e, f, a, phase1)},
            curve_markdown(e, f, a, phase1),
            {{phase.title, phase.results_file, curve_outcome(f, a), f.complete}}};
}

inline ExperimentReport hit_miss_report(const std::filesystem::path& in_dir, const Experiment& e) {
    std::vector<PhaseResult> phases;
    for (const auto& phase : e.phases) {
        const std::filesystem::path file = results_path(in_dir, phase);
        std::error_code ec;
        // A file that is there but unreadable is read anyway, so its error is reported.
        if (std::filesystem::exists(file, ec) || ec) phases.push_back(read_results_file(file, &phase));
    }
    if (phases.empty()) throw no_results(in_dir, {e});

    ExperimentReport report;
    report.figures = {results_figure(e, phases), phase_comparison_figure(e, phases)};
    if (has_fleet_phase(e)) report.figures.push_back(placement_figure(e, phases));
    for (const auto& p : phases)
        if (p.baseline) report.figures.push_back(baseline_figure(p));
    std::vector<std::string> images;
    for (const auto& f : report.figures) images.push_back(f.name + ".png");
    report.markdown = md_phases(phases, images, "Figures: " + e.title);
    for (const auto& p : phases)
        report.results.push_back({p.phase.title, p.phase.results_file, p.verdict.outcome, p.complete});
    return report;
}

inline ExperimentReport experiment_report(const std::filesystem::path& in_dir, const Experiment& e) {
    return e.kind == ExperimentKind::curve ? curve_report(in_dir, e) : hit_miss_report(in_dir, e);
}

// Every figure and the one summary.md, staged together: nothing replaces an existing file unless
// every experiment's figures were drawn.
inline void write_experiment_reports(const std::vector<ExperimentReport>& reports,
                                     const std::filesystem::path& out_dir) {
    std::vector<ResultLine> results;
    std::string sections;
    for (const auto& r : reports) {
        results.insert(results.end(), r.results.begin(), r.results.end());
        sections += r.markdown;
    }
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) throw ReportError(out_dir.string() + ": cannot create the report directory: " + ec.message());
    StagedFiles staged;
    for (const auto& r : reports)
        for (const auto& f : r.figures) stage_figure(f, out_dir, staged);
    staged.write(out_dir / summary_file_name, "# kvgate report\n\n" + overview_markdown(results) + sections);
    staged.commit();
}

}  // namespace report_detail

// One experiment's figures and summary.md, for a directory that holds only its results: summary.md
// speaks for the whole directory, so other experiments' results there are refused rather than
// left out of it (write_all_reports reports them all).
inline void write_reports(const std::filesystem::path& in_dir, const std::filesystem::path& out_dir,
                          const Experiment& experiment = default_experiment()) {
    for (const auto& other : experiments())
        if (other.id != experiment.id && report_detail::has_results(in_dir, other))
            throw ReportError(in_dir.string() + ": holds results of '" + other.title + "' (" +
                              report_detail::results_file_list({other}) + ") besides '" + experiment.title +
                              "'; report the whole directory (kvgate report, write_all_reports) so that summary.md "
                              "carries every verdict");
    report_detail::write_experiment_reports({report_detail::experiment_report(in_dir, experiment)}, out_dir);
}

// Figures for every experiment that has a results file in `in_dir`, and one summary.md for all of
// them, replaced together or not at all; returns those experiments.
inline std::vector<const Experiment*> write_all_reports(const std::filesystem::path& in_dir,
                                                        const std::filesystem::path& out_dir) {
    std::vector<const Experiment*> reported;
    std::vector<report_detail::ExperimentReport> reports;
    for (const auto& e : experiments()) {
        if (!report_detail::has_results(in_dir, e)) continue;
        reports.push_back(report_detail::experiment_report(in_dir, e));
        reported.push_back(&e);
    }
    if (reported.empty()) throw report_detail::no_results(in_dir, experiments());
    report_detail::write_experiment_reports(reports, out_dir);
    return reported;
}

}  // namespace kvgate
