// The baseline gate in pictures and words: baseline and current side by side (per-pair miss/hit
// ratios as dots, each run's interval on its geometric mean, the regression bar), and a Markdown
// section. Draws from the current result alone: its BaselineRecord keeps the baseline's pairs.
#pragma once

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "kvgate/model/records.hpp"
#include "kvgate/report/report_markdown.hpp"
#include "kvgate/report/report_plot.hpp"
#include "kvgate/stats/stats.hpp"

namespace kvgate {

inline std::string baseline_figure_name(const PhaseDescriptor& p) { return p.name + "_baseline"; }

namespace report_detail {

struct GeoInterval {
    double mean = 0, low = 0, high = 0;
};

// The t interval on the mean log ratio, mapped back: the geometric mean and its interval.
inline GeoInterval geo_interval(const std::vector<double>& ratios, double confidence) {
    std::vector<double> logs;
    for (double x : ratios)
        if (x > 0 && std::isfinite(x)) logs.push_back(std::log(x));
    GeoInterval g;
    if (logs.size() < 2) return g;
    const double m = mean(logs), se = stdev(logs) / std::sqrt(static_cast<double>(logs.size()));
    const double t = student_t_quantile(0.5 + confidence / 2, static_cast<double>(logs.size() - 1));
    g.mean = std::exp(m);
    g.low = std::exp(m - t * se);
    g.high = std::exp(m + t * se);
    return g;
}

inline std::vector<double> current_pair_ratios(const PhaseResult& r) {
    const auto hits = r.measured(Arm::hit);
    const auto misses = r.measured(Arm::miss);
    std::vector<double> out;
    for (std::size_t i = 0; i < std::min(hits.size(), misses.size()); ++i)
        if (hits[i]->ttft_ms > 0) out.push_back(misses[i]->ttft_ms / hits[i]->ttft_ms);
    return out;
}

}  // namespace report_detail

// Needs r.baseline.
inline Figure baseline_figure(const PhaseResult& r) {
    using namespace report_detail;
    const BaselineRecord& b = *r.baseline;
    const std::string name = baseline_figure_name(r.phase);
    const auto current = current_pair_ratios(r);
    const double conf = b.confidence > 0 ? b.confidence : 0.95;
    const GeoInterval gb = geo_interval(b.baseline_pair_ratios, conf), gc = geo_interval(current, conf);
    std::ostringstream d;
    d << "# pairs: x, miss/hit ratio\n";
    // Dots spread across their column by their order, so equal values stay visible.
    auto dots = [&](const std::vector<double>& xs, double centre) {
        for (std::size_t i = 0; i < xs.size(); ++i)
            d << dat_number(centre - 0.2 + 0.4 * (xs.size() > 1 ? double(i) / (xs.size() - 1) : 0.5)) << " "
              << dat_number(xs[i]) << "\n";
    };
    dots(b.baseline_pair_ratios, 0);
    dots(current, 1);
    d << "\n\n# intervals: x, geometric mean, low, high\n"
      << "0 " << dat_number(gb.mean) << " " << dat_number(gb.low) << " " << dat_number(gb.high) << "\n"
      << "1 " << dat_number(gc.mean) << " " << dat_number(gc.low) << " " << dat_number(gc.high) << "\n";
    const double regression_line = b.baseline_ratio * b.ratio_bar;
    std::ostringstream s;
    s << script_preamble(name, "baseline vs current miss/hit TTFT ratios", 800, 560)
      << "set title " << gp_quote(r.phase.label + " baseline gate: " + to_string(b.outcome) + ", current/baseline " +
                                  format_fixed(b.ratio_estimate, 3) + " [" + format_fixed(b.ratio_low, 3) + ", " +
                                  format_fixed(b.ratio_high, 3) + "], bar " + format_fixed(b.ratio_bar, 3))
      << "\n"
      << "set xrange [-0.6:1.6]\nset offsets 0, 0, graph 0.1, 0\n"
      << "set xtics (" << gp_quote("baseline " + b.revision) << " 0, " << gp_quote("current " + r.git_revision)
      << " 1)\n"
      << "set ylabel \"miss/hit TTFT ratio (per pair)\"\n"
      << "set arrow from -0.6," << dat_number(regression_line) << " to 1.6," << dat_number(regression_line)
      << " nohead dt 2 lw 2 lc rgb \"#CC0000\"\n"
      << "set label " << gp_quote("regression bar: baseline x " + format_fixed(b.ratio_bar, 3) + " = " +
                                  format_fixed(regression_line, 3))
      << " at -0.55," << dat_number(regression_line) << " offset 0,0.7 tc rgb \"#CC0000\"\n"
      << "plot datafile index 0 using 1:2 with points pt 7 ps 1.1 lc rgb " << gp_quote(hit_colour)
      << " title \"pairs\", \\\n"
      << "     datafile index 1 using 1:2:3:4 with yerrorbars pt 5 ps 1.6 lw 2 lc rgb \"#333333\" title "
      << gp_quote("geometric mean, " + format_fixed(conf * 100, 0) + "% interval") << "\n";
    return {name, d.str(), s.str()};
}

// `kvgate compare`'s report: r.verdict is the decision (compare_verdict), r.baseline the comparison.
inline std::string baseline_markdown(const PhaseResult& r, const std::string& figure_file) {
    using report_detail::format_fixed;
    const BaselineRecord& b = *r.baseline;
    std::ostringstream s;
    s << "# kvgate compare: " << r.phase.title << "\n\n"
      << "**" << report_detail::md_outcome(r.verdict.outcome) << "** — " << report_detail::md_line(r.verdict.reason)
      << "\n\n";
    if (!r.verdict.fix.empty()) s << "**Fix:** " << report_detail::md_line(r.verdict.fix) << "\n\n";
    s << "The comparison alone: **" << to_string(b.outcome) << "** — " << report_detail::md_line(b.reason)
      << (b.fix.empty() ? "" : " (fix: " + report_detail::md_line(b.fix) + ")") << "\n\n"
      << "| | baseline | current |\n|---|---:|---:|\n"
      << "| results | `" << b.path << "` | |\n"
      << "| git revision | `" << b.revision << "` | `" << r.git_revision << "` |\n"
      << "| started | " << b.timestamp << " | " << r.timestamp << " |\n"
      << "| miss/hit ratio (geometric mean) | " << format_fixed(b.baseline_ratio, 3) << " | "
      << format_fixed(b.current_ratio, 3) << " |\n\n"
      << "- current/baseline miss/hit ratio " << format_fixed(b.ratio_estimate, 3) << ", "
      << format_fixed(b.confidence * 100, 0) << "% interval [" << format_fixed(b.ratio_low, 3) << ", "
      << format_fixed(b.ratio_high, 3) << "]; fails below " << format_fixed(b.ratio_bar, 3) << " (the saving shrank by more than "
      << format_fixed(b.regression_pct, 0) << "%)\n"
      << "- current/baseline hit TTFT " << format_fixed(b.hit_estimate, 3) << " [" << format_fixed(b.hit_low, 3) << ", "
      << format_fixed(b.hit_high, 3) << "]; a slower cached path beyond " << format_fixed(b.hit_bar, 3) << "\n"
      << "- method: " << b.method << "\n";
    for (const auto& d : b.differences) s << "- declared comparable despite: " << d << "\n";
    if (!figure_file.empty()) s << "\n![" << baseline_figure_name(r.phase) << "](" << figure_file << ")\n";
    return s.str();
}

}  // namespace kvgate
