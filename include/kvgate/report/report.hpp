// `kvgate report`: a directory's results files in; every experiment's figures (with their gnuplot
// scripts and data) and one summary.md for all of them out, for whichever phases have results.
// Every input is read and validated, and every output drawn, before any output replaces an
// existing file.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "kvgate/model/experiment.hpp"
#include "kvgate/model/report_files.hpp"
#include "kvgate/model/results_json.hpp"
#include "kvgate/report/report_experiments.hpp"
#include "kvgate/report/report_markdown.hpp"
#include "kvgate/report/report_model.hpp"
#include "kvgate/report/report_plot.hpp"
#include "kvgate/report/report_verdicts_json.hpp"

namespace kvgate {

inline constexpr const char* summary_file_name = "summary.md";

// A report format: renders the report models of every experiment in a directory into files staged in
// the output directory (committed together with every other format's, or not at all). A new format is
// a function here and a line in reporters().
struct Reporter {
    const char* name;
    std::vector<std::string> files;  // what it writes whatever the experiments (figures: none)
    void (*render)(const std::vector<ExperimentReport>&, const std::filesystem::path& out_dir, StagedFiles&);
};

namespace report_detail {

inline void render_figures(const std::vector<ExperimentReport>& reports, const std::filesystem::path& out_dir,
                           StagedFiles& staged) {
    for (const auto& r : reports)
        for (const auto& f : r.figures) stage_figure(f, out_dir, staged);
}

inline void render_summary(const std::vector<ExperimentReport>& reports, const std::filesystem::path& out_dir,
                           StagedFiles& staged) {
    std::vector<ResultLine> results;
    std::string sections;
    for (const auto& r : reports) {
        results.insert(results.end(), r.results.begin(), r.results.end());
        sections += r.markdown;
    }
    staged.write(out_dir / summary_file_name, "# kvgate report\n\n" + overview_markdown(results) + sections);
}

}  // namespace report_detail

inline const std::vector<Reporter>& reporters() {
    static const std::vector<Reporter> all = {
        {"gnuplot figures", {}, report_detail::render_figures},
        {"Markdown summary", {summary_file_name}, report_detail::render_summary},
        {"verdicts JSON", {verdicts_file_name}, report_detail::render_verdicts_json},
    };
    return all;
}

// The files write_reports() may write for an experiment, by name.
inline std::vector<std::string> report_file_names(const Experiment& e) {
    std::vector<std::string> names;
    for (const std::string& figure : experiment_reporter(e.kind).figure_names(e))
        for (const char* ext : {".png", ".gp", ".dat"}) names.push_back(figure + ext);
    for (const auto& r : reporters()) names.insert(names.end(), r.files.begin(), r.files.end());
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

// Every format's files, staged together: nothing replaces an existing file unless every format
// rendered every experiment.
inline void write_experiment_reports(const std::vector<ExperimentReport>& reports,
                                     const std::filesystem::path& out_dir) {
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) throw ReportError(out_dir.string() + ": cannot create the report directory: " + ec.message());
    StagedFiles staged;
    for (const auto& reporter : reporters()) reporter.render(reports, out_dir, staged);
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
    if (!report_detail::has_results(in_dir, experiment)) throw report_detail::no_results(in_dir, {experiment});
    report_detail::write_experiment_reports({experiment_reporter(experiment.kind).report(in_dir, experiment)}, out_dir);
}

// Figures for every experiment that has a results file in `in_dir`, and one summary.md for all of
// them, replaced together or not at all; returns those experiments.
inline std::vector<const Experiment*> write_all_reports(const std::filesystem::path& in_dir,
                                                        const std::filesystem::path& out_dir) {
    std::vector<const Experiment*> reported;
    std::vector<ExperimentReport> reports;
    for (const auto& e : experiments()) {
        if (!report_detail::has_results(in_dir, e)) continue;
        reports.push_back(experiment_reporter(e.kind).report(in_dir, e));
        reported.push_back(&e);
    }
    if (reported.empty()) throw report_detail::no_results(in_dir, experiments());
    report_detail::write_experiment_reports(reports, out_dir);
    return reported;
}

}  // namespace kvgate
