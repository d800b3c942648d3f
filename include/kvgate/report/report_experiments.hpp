// The experiment seam, report side: how each kind of experiment (experiment.hpp's ExperimentKind)
// turns its results files into the report model (report_model.hpp), one entry each; its run side is
// experiment_runners.hpp. report.hpp's reporters render the models and loop over this table.
#pragma once

#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvgate/experiment/curve.hpp"
#include "kvgate/model/experiment.hpp"
#include "kvgate/model/records.hpp"
#include "kvgate/model/results_json.hpp"
#include "kvgate/report/report_baseline.hpp"
#include "kvgate/report/report_curve.hpp"
#include "kvgate/report/report_fleet.hpp"
#include "kvgate/report/report_markdown.hpp"
#include "kvgate/report/report_model.hpp"
#include "kvgate/report/report_plot.hpp"

namespace kvgate {

struct ExperimentReporter {
    ExperimentKind kind;
    // The experiment's report model from the results files in a directory (that holds at least one).
    ExperimentReport (*report)(const std::filesystem::path& in_dir, const Experiment&);
    // The stems of the figures its report may draw (for `kvgate clear` and the report's file list).
    std::vector<std::string> (*figure_names)(const Experiment&);
};

namespace experiment_detail {

// Experiment 1 (and the fleet): each phase's headline with its two contrasts and medians.
inline ResultLine hit_miss_line(const PhaseResult& p) {
    const auto& v = p.verdict;
    ResultLine line{p.phase.title, p.phase.results_file, v.outcome, p.complete, v.reason, v.fix, {}};
    line.metrics = {{"cold/hit TTFT ratio", v.cache.ratio, v.cache.low, v.cache.high, ""},
                    {"miss/hit TTFT ratio", v.invalidation.ratio, v.invalidation.low, v.invalidation.high, ""},
                    {"hit TTFT median", p.hit_stats.ttft_median, NAN, NAN, "ms"},
                    {"miss TTFT median", p.miss_stats.ttft_median, NAN, NAN, "ms"},
                    {"cold TTFT median", p.cold_stats.ttft_median, NAN, NAN, "ms"},
                    {"saving per cached token", v.saving_per_cached_token_ms, NAN, NAN, "ms"}};
    return line;
}

inline ExperimentReport hit_miss_report(const std::filesystem::path& in_dir, const Experiment& e) {
    std::vector<PhaseResult> phases;
    for (const auto& phase : e.phases) {
        const std::filesystem::path file = results_path(in_dir, phase);
        std::error_code ec;
        // A file that is there but unreadable is read anyway, so its error is reported.
        if (std::filesystem::exists(file, ec) || ec) phases.push_back(read_results_file(file, &phase));
    }
    ExperimentReport report{e.id, {results_figure(e, phases), phase_comparison_figure(e, phases)}, "", {}};
    if (has_fleet_phase(e)) report.figures.push_back(placement_figure(e, phases));
    for (const auto& p : phases)
        if (p.baseline) report.figures.push_back(baseline_figure(p));
    std::vector<std::string> images;
    for (const auto& f : report.figures) images.push_back(f.name + ".png");
    report.markdown = report_detail::md_phases(phases, images, "Figures: " + e.title);
    for (const auto& p : phases) report.results.push_back(hit_miss_line(p));
    return report;
}

inline std::vector<std::string> hit_miss_figure_names(const Experiment& e) {
    std::vector<std::string> names{results_figure_name(e), phase_comparison_figure_name(e)};
    if (has_fleet_phase(e)) names.push_back(placement_figure_name(e));
    for (const auto& p : e.phases) names.push_back(baseline_figure_name(p));
    return names;
}

// Experiment 2's sweep: its fitted curve, the evidence, and Experiment 1 predicted from the fit.
inline ExperimentReport curve_report(const std::filesystem::path& in_dir, const Experiment& e) {
    const PhaseDescriptor& phase = e.phases.front();
    const CurveFile f = read_curve_file(results_path(in_dir, phase));
    const CurveAnalysis& a = f.analysis;  // as the run recorded it: no fitting at render time
    const auto phase1 = curve_phase1(in_dir);
    const RunHeadline verdict = curve_verdict(f.fault, f.complete, a);
    ResultLine line{phase.title, phase.results_file, verdict.outcome, f.complete, verdict.reason, verdict.fix, {}};
    line.metrics.push_back({"cells reused as predicted", static_cast<double>(a.cells - a.flagged), NAN, NAN, "cells"});
    if (a.per_token)
        line.metrics.push_back({"cost per recomputed token", a.per_token->estimate, a.per_token->low, a.per_token->high, "ms"});
    return {e.id, {curve_figure(e, f, a, phase1)}, curve_markdown(e, f, a, phase1), {line}};
}

inline std::vector<std::string> curve_figure_names(const Experiment& e) { return {curve_figure_name(e)}; }

}  // namespace experiment_detail

inline const std::vector<ExperimentReporter>& experiment_reporters() {
    using namespace experiment_detail;
    static const std::vector<ExperimentReporter> all = {
        {ExperimentKind::hit_miss, hit_miss_report, hit_miss_figure_names},
        {ExperimentKind::curve, curve_report, curve_figure_names},
    };
    return all;
}

inline const ExperimentReporter& experiment_reporter(ExperimentKind kind) {
    for (const auto& r : experiment_reporters())
        if (r.kind == kind) return r;
    throw std::logic_error("experiment_reporters(): no entry for this ExperimentKind; add one beside the others");
}

}  // namespace kvgate
