// The seed's two figures for an experiment's phases, drawn by gnuplot from a script and a data file that stay beside the PNG,
// so `gnuplot <name>.gp` in that directory re-draws it. Script and data text are pure functions;
// only stage_figure()/render_figure() touch the disk or run gnuplot.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnuplot-iostream.h>

#include "kvgate/model/experiment.hpp"
#include "kvgate/model/records.hpp"
#include "kvgate/model/report_files.hpp"
#include "kvgate/report/report_labels.hpp"
#include "kvgate/report/report_model.hpp"

namespace kvgate {

inline std::string results_figure_name(const Experiment& e) { return e.id + "_results"; }
inline std::string phase_comparison_figure_name(const Experiment& e) { return e.id + "_phase_comparison"; }

namespace report_detail {

// Okabe-Ito blue, vermillion and bluish green: distinct for colour-blind readers and in greyscale.
inline constexpr const char* hit_colour = "#0072B2";
inline constexpr const char* miss_colour = "#D55E00";
inline constexpr const char* cold_colour = "#009E73";
inline constexpr const char* bar_colour = "#CC0000";

inline const char* arm_colour(Arm arm) {
    return arm == Arm::hit ? hit_colour : arm == Arm::miss ? miss_colour : cold_colour;
}

// An arm under its bar, short enough for three bars a panel (the key says "cache hit" and so on).
inline std::string arm_tic(Arm arm) {
    return arm == Arm::hit ? "hit [A,B,Q]" : arm == Arm::miss ? "miss [B,Q]" : "cold [A',B,Q]";
}

// Where an arm's bar stands within its phase: hit 0, miss 1, cold 2 (the figures' and the data's `arm` column).
inline int arm_x(Arm arm) { return arm == Arm::hit ? 0 : arm == Arm::miss ? 1 : 2; }

// A gnuplot string that stays text whatever `s` holds (a server's version, a model name, a file's
// git_revision): single-quoted, because gnuplot runs `command` inside double quotes and expands
// @macros outside quotes, while inside single quotes nothing is special but the closing quote. The
// text itself never holds one: a quote or a line break closes the string and joins "\047" or "\n"
// to it with gnuplot's `.` (gnuplot's '' escape misreads runs of quotes, and its macro scan counts
// a literal quote anywhere on the line). Other control characters become spaces.
inline std::string gp_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '\'')
            out += "'.\"\\047\".'";
        else if (c == '\n')
            out += "'.\"\\n\".'";
        else if (byte < 0x20 || byte == 0x7f)
            out += ' ';
        else
            out += c;
    }
    return out + "'";
}

// An explicit tic label: gnuplot reads it as a format for the tic's value, so every % is doubled (a
// single one, as in "97.5% interval", is a bad format and stops the figure); then quoted as any text.
inline std::string gp_tic(const std::string& s) {
    std::string text;
    for (char c : s) text += c == '%' ? std::string("%%") : std::string(1, c);
    return gp_quote(text);
}

inline std::string dat_number(double v) { return std::isfinite(v) ? format_fixed(v, 3) : "NaN"; }

// A value label as two data columns, "y text". Its y is always a number: gnuplot 5.4 crashes when
// two `with labels` plots have only undefined points, and a run that stopped before measuring
// anything has NaN statistics. Unknown values get an empty text at y = 0.
inline std::string dat_label(double value, double y, const char* unit) {
    if (!std::isfinite(value)) return "0 \"\"";
    return dat_number(std::isfinite(y) ? y : value) + " \"" + format_fixed(value, 1) + unit + "\"";
}

inline std::string signed_ms(double v) {
    return std::isfinite(v) ? (v >= 0 ? "+" : "\u2212") + format_fixed(std::fabs(v), 1) + " ms" : "n/a";
}

// Distinct models are all named; one is named once.
inline std::string models_title(const std::vector<PhaseResult>& phases) {
    std::string out;
    for (const auto& p : phases)
        if (out.find(p.settings.target.model) == std::string::npos) out += (out.empty() ? "" : " / ") + p.settings.target.model;
    return out;
}

inline std::string only_note(const std::vector<PhaseResult>& phases) {
    if (phases.size() != 1) return "";
    const std::string& title = phases[0].phase.title;
    return " (only " + title.substr(0, title.find(':')) + " results exist)";
}

// Shared head of both scripts: where data and output are, and the look.
inline std::string script_preamble(const std::string& name, const std::string& what, int width, int height) {
    std::ostringstream s;
    s << "# kvgate figure " << name << ": " << what << "\n"
      << "# Re-draw from this directory: gnuplot " << name << ".gp\n"
      << "# Data: " << name << ".dat (written by kvgate; blocks are selected by the name in their first comment).\n"
      << "if (!exists(\"datafile\")) datafile = " << gp_quote(name + ".dat") << "\n"
      << "if (!exists(\"outfile\")) outfile = " << gp_quote(name + ".png") << "\n"
      << "set encoding utf8\n"
      << "set terminal pngcairo size " << width << "," << height << " noenhanced font \"sans,11\"\n"
      << "set output outfile\n"
      << "set style fill solid 0.85 border lc rgb \"#333333\"\n"
      << "set boxwidth 0.6\n"
      << "set grid ytics lc rgb \"#dddddd\"\n"
      << "set ytics nomirror\n"
      << "set xtics nomirror scale 0\n"
      << "set yrange [0:*]\n"
      << "# Half a bar of room at the x edges so edge boxes are whole; headroom above for the labels.\n"
      << "set offsets 0.5, 0.5, graph 0.22, 0\n"
      << "set key outside bottom center horizontal samplen 2\n";
    return s.str();
}

inline void measured_trial_rows(std::ostringstream& out, const PhaseResult& r) {
    for (Arm arm : shown_arms(r)) {
        auto trials = r.measured(arm);
        const double centre = arm_x(arm);
        for (std::size_t i = 0; i < trials.size(); ++i) {
            // Spread the dots across the bar so equal values stay visible.
            double x = trials.size() < 2 ? centre : centre - 0.2 + 0.4 * static_cast<double>(i) / (trials.size() - 1);
            out << dat_number(x) << " " << dat_number(trials[i]->ttft_ms) << " " << dat_number(trials[i]->throughput)
                << " " << trials[i]->index << " " << arm_x(arm) << "\n";
        }
    }
}

// The verdict's two contrasts, as the decision panel draws them: cold/hit at x = 0, miss/hit at x = 1.
struct DecisionContrast {
    const char* block;  // the data block's suffix: [L-cache], [L-invalidation]
    const char* name;   // "cold/hit", "miss/hit"
    const char* what;   // what the contrast measures (its tic label)
    Arm other;          // the arm set against the hit (its colour)
    ShownContrast c;
};

inline std::vector<DecisionContrast> decision_contrasts(const PhaseResult& r) {
    return {{"cache", "cold/hit", "cold/hit: the cache's saving", Arm::cold, cache_contrast(r)},
            {"invalidation", "miss/hit", "miss/hit: invalidation cost", Arm::miss, invalidation_contrast(r)}};
}

// One contrast's numbers beside its interval: ratio and interval, the look's confidence and pairs, outcome.
inline std::string decision_label(const DecisionContrast& d) {
    if (!d.c.shown) return d.c.absent;
    std::string out = format_fixed(d.c.ratio, 3) +
                      (d.c.interval() ? " [" + format_fixed(d.c.low, 3) + ", " + format_fixed(d.c.high, 3) + "]"
                                      : std::string(" (no interval)")) +
                      "\n" + confidence_pct(d.c.look_confidence) + " interval, " +
                      (d.c.pairs > 0 ? std::to_string(d.c.pairs) + " pairs" : std::string("pairs not recorded"));
    if (d.c.outcome) out += "\n" + upper(to_string(*d.c.outcome)) + ": " + contrast_outcome_words(*d.c.outcome);
    return out;
}

// How many rounds the decision took and why, as the result recorded it.
inline std::string rounds_text(const PhaseResult& r) {
    const Verdict& v = r.verdict;
    std::string out = v.rounds > 0 ? std::to_string(v.rounds) + (v.rounds == 1 ? " round" : " rounds") : "";
    if (!v.rounds_reason.empty()) out += (out.empty() ? "" : ": ") + v.rounds_reason;
    return out.empty() ? "rounds not recorded (a results file from before the sequential decision)" : out;
}

}  // namespace report_detail

// Data for the results grid. Per phase with label L (P1, P2...): blocks [L-hit], [L-miss] and, where the
// cold arm was measured, [L-cold] with one summary row each; [L-trials] with one row per measured
// trial; and the contrasts the verdict was decided on, [L-cache] (cold/hit) and [L-invalidation]
// (miss/hit), each where the result has it.
inline std::string results_data(const Experiment& experiment, const std::vector<PhaseResult>& phases) {
    using namespace report_detail;
    std::ostringstream out;
    out << "# kvgate data for " << results_figure_name(experiment) << ".gp. TTFT in ms, throughput in completion tokens/s.\n"
        << "# Statistics and trials are the measured trials only (warm-up trials excluded).\n"
        << "# Summary blocks, columns: x ttft_median ttft_stdev throughput_median throughput_stdev n ttft_mean "
           "throughput_mean ttft_label_y ttft_label throughput_label_y throughput_label\n"
        << "# Trial blocks, columns: x ttft_ms throughput trial_index arm(0=hit,1=miss,2=cold)\n"
        << "# Contrast blocks (as the verdict recorded them), columns: x ratio low high pairs(0: not recorded) "
           "look_confidence bar\n";
    for (std::size_t i = 0; i < phases.size(); ++i) {
        const PhaseResult& r = phases[i];
        const std::string& label = r.phase.label;
        for (Arm arm : shown_arms(r)) {
            const ArmStats& s = r.stats(arm);
            out << "\n\n# [" << label << "-" << arm_word(arm) << "] " << r.phase.title << ", " << to_string(arm) << "\n"
                << report_detail::arm_x(arm) << " " << dat_number(s.ttft_median) << " " << dat_number(s.ttft_stdev)
                << " " << dat_number(s.throughput_median) << " " << dat_number(s.throughput_stdev) << " " << s.n << " "
                << dat_number(s.ttft_mean) << " " << dat_number(s.throughput_mean) << " "
                // Labels sit inside the bars, where the trial dots (near the bar tops) cannot cover them.
                << report_detail::dat_label(s.ttft_median, s.ttft_median / 2, " ms") << " "
                << report_detail::dat_label(s.throughput_median, s.throughput_median / 2, " tok/s") << "\n";
        }
        out << "\n\n# [" << label << "-trials] " << r.phase.title << ", measured trials\n";
        report_detail::measured_trial_rows(out, r);
        const auto contrasts = report_detail::decision_contrasts(r);
        for (std::size_t k = 0; k < contrasts.size(); ++k) {
            const auto& d = contrasts[k];
            if (!d.c.shown) continue;
            out << "\n\n# [" << label << "-" << d.block << "] " << r.phase.title << ", " << d.name
                << " TTFT ratio as decided\n"
                << k << " " << dat_number(d.c.ratio) << " " << dat_number(d.c.low) << " " << dat_number(d.c.high) << " "
                << d.c.pairs << " " << format_fixed(d.c.look_confidence, 6) << " "
                << dat_number(threshold_ratio(r.verdict.threshold_pct)) << "\n";
        }
    }
    return out.str();
}

namespace report_detail {

// One panel of the grid: bars with error bars per arm, the trials as dots, values on the bars.
// Columns of the summary block (bars, labels) and of the trial block.
struct Panel {
    const char* bars;
    const char* labels;
    int trial_column;
};

inline void panel_plot(std::ostringstream& s, const std::string& block, const Panel& p, const std::vector<Arm>& arms) {
    s << "plot ";
    for (Arm arm : arms)
        s << (arm == arms.front() ? "" : "     ") << (arm == arms.front() ? "datafile" : "''") << " index "
          << gp_quote(block + "-" + arm_word(arm) + "]") << " using " << p.bars << " with boxerrorbars lc rgb "
          << gp_quote(arm_colour(arm)) << " title " << gp_quote(std::string("cache ") + arm_word(arm)) << ", \\\n";
    s << "     '' index " << gp_quote(block + "-trials]") << " using 1:" << p.trial_column
      << " with points pt 7 ps 0.7 lc rgb \"#60000000\" title \"single trials\"";
    for (Arm arm : arms)
        s << ", \\\n     '' index " << gp_quote(block + "-" + arm_word(arm) + "]") << " using " << p.labels
          << " with labels tc rgb \"white\" font \",12\" notitle";
    s << "\n";
}

// The third panel of a phase's row: the two contrasts the verdict was decided on, each the ratio and its
// interval at the confidence of the look that decided, against the bar; under each, its numbers in words.
inline void decision_panel(std::ostringstream& s, const PhaseResult& r) {
    const std::string block = "[" + r.phase.label;
    const double bar = threshold_ratio(r.verdict.threshold_pct);
    const auto contrasts = decision_contrasts(r);
    // A fixed range: room for every interval, the bar and 1 (no difference), and for the numbers beside them.
    double lo = std::min(1.0, bar), hi = std::max(1.0, bar);
    for (const auto& d : contrasts)
        if (d.c.shown)
            for (double v : {d.c.ratio, d.c.low, d.c.high})
                if (std::isfinite(v)) {
                    lo = std::min(lo, v);
                    hi = std::max(hi, v);
                }
    const double span = std::max(hi - lo, 0.1);
    lo = std::max(0.0, lo - 0.15 * span);
    hi += 0.15 * span;
    s << "# " << r.phase.title << ": the decision. A contrast passes when its whole interval lies above the bar, "
         "fails when it lies below.\n"
      << "unset label 2\n"
      << "set title "
      << gp_quote(r.phase.title + " \u2014 decision: " + upper(to_string(r.verdict.outcome)) + "\n" +
                  wrapped(rounds_text(r), 75))
      << "\n"
      << "set xrange [-0.35:2.2]\n"
      << "set style textbox opaque noborder\n"
      << "set yrange [" << dat_number(lo) << ":" << dat_number(hi) << "]\n"
      << "set xtics (" << gp_tic(contrasts[0].what) << " 0, " << gp_tic(contrasts[1].what) << " 1)\n"
      << "set ylabel \"TTFT ratio to the hit (median of paired ratios)\"\n";
    // Each contrast's numbers to the right of its interval, the first of three lines level with the ratio.
    for (std::size_t k = 0; k < contrasts.size(); ++k) {
        const auto& d = contrasts[k];
        s << "set label " << 6 + k << " " << gp_quote(decision_label(d));
        if (d.c.shown)
            s << " at first " << k << ".08, first " << dat_number(d.c.ratio) << " offset 0,1 left boxed";
        else
            s << " at first " << k << ", graph 0.5 center";
        s << " front font \",9\"\n";
    }
    std::vector<std::string> plots;
    for (const auto& d : contrasts) {
        if (!d.c.shown) continue;
        plots.push_back(std::string(plots.empty() ? "datafile" : "''") + " index " +
                        gp_quote(block + "-" + d.block + "]") + " using 1:2:3:4 with yerrorbars pt 7 ps 1.6 lw 2 lc rgb " +
                        gp_quote(arm_colour(d.other)) + " title " + gp_quote(d.name));
    }
    // The bar as a line named in the key; 1 (no difference) dotted.
    plots.push_back(dat_number(bar) + " with lines dt 2 lw 2 lc rgb " + gp_quote(bar_colour) + " title " +
                    gp_quote("bar " + format_fixed(bar, 3) + " (" + signed_pct(r.verdict.threshold_pct) + ")"));
    if (std::fabs(bar - 1) > 1e-9)
        plots.push_back("1 with lines dt 3 lc rgb \"#888888\" notitle");  // 1: no difference
    s << "plot ";
    for (std::size_t i = 0; i < plots.size(); ++i) s << (i ? ", \\\n     " : "") << plots[i];
    s << "\n"
      << "unset label 6\nunset label 7\n"
      << "set autoscale x\n"
      << "set yrange [0:*]\n";
}

}  // namespace report_detail

// The seed's grid: one row per phase, TTFT and throughput side by side, then the decision.
inline std::string results_script(const Experiment& experiment, const std::vector<PhaseResult>& phases) {
    using namespace report_detail;
    const std::string name = results_figure_name(experiment);
    const int rows = static_cast<int>(phases.size());
    std::ostringstream s;
    s << script_preamble(name, "TTFT and throughput per arm, and the contrasts decided on, per phase", 2100,
                         160 + 500 * rows)
      << "set multiplot layout " << rows << ",3 title "
      << gp_quote(experiment.title + " \u2014 model " + models_title(phases) + only_note(phases) +
                  "\nbars: median of measured trials \u00b7 error bars: \u00b11 stdev \u00b7 dots: single trials"
                  " \u00b7 right: the ratios the verdict was decided on, with their intervals, against the bar")
      << " font \",14\"\n";
    for (const PhaseResult& r : phases) {
        const std::string block = "[" + r.phase.label;
        const std::string row_title = r.phase.title + " \u00b7 " + engine_title(r.engine);
        const std::vector<Arm> arms = shown_arms(r);
        int measured = 0;
        s << "\n# " << r.phase.title << "\n"
          << "set xtics (";
        for (Arm arm : arms) {
            measured += r.stats(arm).n;
            s << (arm == arms.front() ? "" : ", ") << gp_tic(arm_tic(arm) + ", n=" + std::to_string(r.stats(arm).n))
              << " " << arm_x(arm);
        }
        s << ")\n";
        if (measured == 0)
            s << "set label 2 \"no measured trials: the run stopped early (see summary.md)\""
                 " at graph 0.5, graph 0.5 center front\n";
        else if (!r.complete)
            s << "set label 2 \"partial: the run did not finish (see summary.md)\""
                 " at graph 0.5, graph 0.86 center front\n";
        s << "set title " << gp_quote(row_title + " \u2014 TTFT") << "\n"
          << "set ylabel " << gp_quote(r.settings.gate.ttft == TtftSource::engine ? "engine's own TTFT (ms)" : "TTFT (ms)") << "\n"
          << "set label 1 "
          << gp_quote("cache miss: " + signed_pct(r.ttft_degradation_pct) + " TTFT (mean miss vs mean hit)")
          << " at graph 0.5, graph 0.94 center front font \",12\"\n";
        panel_plot(s, block, {"1:2:3", "1:9:10", 2}, arms);
        s << "unset label 1\n"
          << "set title " << gp_quote(row_title + " \u2014 throughput") << "\n"
          << "set ylabel \"throughput (tokens/s)\"\n";
        panel_plot(s, block, {"1:4:5", "1:11:12", 3}, arms);
        decision_panel(s, r);
    }
    s << "unset multiplot\nunset output\n";
    return s.str();
}

namespace report_detail {

// Bars per phase in the comparison: one stride holds hit, miss and (where any phase has it) cold, and a gap.
inline double comparison_stride(const std::vector<PhaseResult>& phases) {
    for (const auto& p : phases)
        if (has_cold_arm(p)) return 3.5;
    return 2.5;
}

}  // namespace report_detail

// Data for the comparison: blocks [hit], [miss] and, where any phase measured it, [cold]; one row per
// phase that has the arm.
inline std::string phase_comparison_data(const Experiment& experiment, const std::vector<PhaseResult>& phases) {
    using namespace report_detail;
    const double stride = report_detail::comparison_stride(phases);
    std::ostringstream out;
    out << "# kvgate data for " << phase_comparison_figure_name(experiment) << ".gp. TTFT in ms, measured trials only.\n"
        << "# Columns: x ttft_median ttft_stdev n ttft_mean condition label_y label\n";
    for (Arm arm : all_arms) {
        std::ostringstream rows;
        for (std::size_t i = 0; i < phases.size(); ++i) {
            if (arm == Arm::cold && !has_cold_arm(phases[i])) continue;
            const ArmStats& s = phases[i].stats(arm);
            const double x = stride * static_cast<double>(i) + report_detail::arm_x(arm);
            rows << dat_number(x) << " " << dat_number(s.ttft_median) << " " << dat_number(s.ttft_stdev) << " " << s.n
                 << " " << dat_number(s.ttft_mean) << " \"" << phases[i].phase.label << "-" << arm_word(arm) << "\" "
                 << report_detail::dat_label(s.ttft_median, s.ttft_median + s.ttft_stdev, " ms") << "\n";
        }
        if (rows.str().empty()) continue;
        out << "\n\n# [" << arm_word(arm) << "] " << to_string(arm) << " per phase\n" << rows.str();
    }
    return out.str();
}

namespace report_detail {

// The transport's overhead for each phase whose in-process counterpart has results too.
inline std::string overhead_note(const std::vector<PhaseResult>& phases) {
    std::string note;
    for (const auto& served : phases) {
        if (served.phase.overhead_against.empty()) continue;
        for (const auto& direct : phases)
            if (direct.phase.name == served.phase.overhead_against) {
                note += std::string(note.empty() ? "" : "\n") + "HTTP overhead (" + served.phase.label + " \u2212 " +
                        direct.phase.label + ", median TTFT): cache hit " +
                        signed_ms(served.hit_stats.ttft_median - direct.hit_stats.ttft_median) + " \u00b7 cache miss " +
                        signed_ms(served.miss_stats.ttft_median - direct.miss_stats.ttft_median);
                if (has_cold_arm(served) && has_cold_arm(direct))
                    note += " \u00b7 cache cold " + signed_ms(served.cold_stats.ttft_median - direct.cold_stats.ttft_median);
            }
    }
    return note.empty() ? "HTTP overhead needs results of a served phase and its in-process counterpart" : note;
}

}  // namespace report_detail

// Grouped bars, a hit, a miss and (where measured) a cold bar per phase; the HTTP overhead of each
// served phase against its in-process counterpart, where both have results.
inline std::string phase_comparison_script(const Experiment& experiment, const std::vector<PhaseResult>& phases) {
    using namespace report_detail;
    const std::string name = phase_comparison_figure_name(experiment);
    const std::string overhead = overhead_note(phases);
    const double stride = comparison_stride(phases);
    bool any_cold = false;
    for (const auto& p : phases) any_cold = any_cold || has_cold_arm(p);
    std::ostringstream s;
    s << script_preamble(name, "TTFT of every condition, every phase", any_cold ? 1200 : 1000, 700) << "set title "
      << gp_quote("TTFT by condition \u2014 median of measured trials, error bars \u00b11 stdev" + only_note(phases) +
                  "\nmodel " + models_title(phases))
      << " font \",13\"\n"
      << "set ylabel \"TTFT (ms)\"\n"
      << "# Each group of bars is one phase: its name goes under the group, below the condition names.\n"
      << "set bmargin 9\n";
    for (std::size_t i = 0; i < phases.size(); ++i)
        s << "set label " << i + 2 << " "
          << gp_quote(phases[i].phase.title + (phases[i].settings.gate.ttft == TtftSource::engine ? " (engine's own TTFT)" : "") +
                      "\n" + engine_title(phases[i].engine))
          << " at first "
          << format_fixed(stride * static_cast<double>(i) + (has_cold_arm(phases[i]) ? 1.0 : 0.5), 2)
          << ", graph -0.1 center\n";
    s << "set label 1 " << gp_quote(overhead) << " at graph 0.5, graph 0.94 center front font \",12\"\n";
    std::vector<Arm> arms = {Arm::hit, Arm::miss};
    if (any_cold) arms.push_back(Arm::cold);
    s << "plot ";
    for (Arm arm : arms)
        s << (arm == Arm::hit ? "datafile" : "     ''") << " index " << gp_quote(std::string("[") + arm_word(arm) + "]")
          << " using 1:2:3:xtic(6) with boxerrorbars lc rgb " << gp_quote(arm_colour(arm)) << " title "
          << gp_quote(arm_condition(arm)) << ", \\\n";
    for (Arm arm : arms)
        s << "     '' index " << gp_quote(std::string("[") + arm_word(arm) + "]")
          << " using 1:7:8 with labels offset 0,0.8 notitle" << (arm == arms.back() ? "\n" : ", \\\n");
    s << "unset output\n";
    return s.str();
}


inline Figure results_figure(const Experiment& e, const std::vector<PhaseResult>& phases) {
    return {results_figure_name(e), results_data(e, phases), results_script(e, phases)};
}

inline Figure phase_comparison_figure(const Experiment& e, const std::vector<PhaseResult>& phases) {
    return {phase_comparison_figure_name(e), phase_comparison_data(e, phases), phase_comparison_script(e, phases)};
}

namespace report_detail {

struct ProcessResult {
    int status;          // exit status; 128 + signal number when killed
    std::string output;  // stdout and stderr together
};

// Runs argv[0] from PATH in `dir`, without a shell (no quoting of paths), collecting its output.
inline ProcessResult run_process(const std::vector<std::string>& argv, const std::filesystem::path& dir) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    // Prepared before fork: the child may only make async-signal-safe calls.
    const std::string dir_text = dir.empty() ? "." : dir.string();
    const std::string cannot_enter = "cannot enter directory " + dir_text + "\n";
    const std::string cannot_run = "cannot run " + argv[0] + " (is it installed and on PATH?)\n";

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw ReportError("cannot run " + argv[0] + ": pipe: " + errno_text(errno));
    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        ::close(fds[0]);
        ::close(fds[1]);
        throw ReportError("cannot run " + argv[0] + ": fork: " + errno_text(err));
    }
    if (pid == 0) {
        ::dup2(fds[1], STDOUT_FILENO);
        ::dup2(fds[1], STDERR_FILENO);
        if (::chdir(dir_text.c_str()) != 0) {
            (void)!::write(STDERR_FILENO, cannot_enter.data(), cannot_enter.size());
            ::_exit(126);
        }
        ::execvp(args[0], args.data());
        (void)!::write(STDERR_FILENO, cannot_run.data(), cannot_run.size());
        ::_exit(127);
    }
    ::close(fds[1]);
    ProcessResult result{0, ""};
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        result.output.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0)
        if (errno != EINTR) throw ReportError("cannot wait for " + argv[0] + ": " + errno_text(errno));
    result.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    return result;
}

inline bool starts_with_png_magic(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    char head[8] = {};
    in.read(head, sizeof head);
    return in.gcount() == 8 && std::string(head, 8) == "\x89PNG\r\n\x1a\n";
}

}  // namespace report_detail

inline bool gnuplot_available() { return report_detail::run_process({"gnuplot", "--version"}, ".").status == 0; }

// Writes <name>.dat and <name>.gp into `dir` and renders <name>.png, all under temporary names
// in `staged`; nothing takes its final name until staged.commit(). Throws with gnuplot's own
// words when it fails.
// Why gnuplot-iostream writes the script instead of streaming data into a gnuplot it opens: the
// script and data stay beside the figure (a reader redraws or audits them, and the report step
// stages them with it), and the error must carry gnuplot's exit status and its words, which the
// pipe gnuplot-iostream opens (popen) gives no way to read; run_process does.
inline void stage_figure(const Figure& figure, const std::filesystem::path& dir, StagedFiles& staged) {
    const std::filesystem::path data = staged.write(dir / (figure.name + ".dat"), figure.data);
    const std::filesystem::path script = staged.stage(dir / (figure.name + ".gp"));
    try {
        Gnuplot gp(">" + script.string());  // gnuplot-iostream writing the script to a file
        gp << figure.script << std::flush;
        if (!gp) throw ReportError(script.string() + ": cannot write the gnuplot script");
    } catch (const std::ios_base::failure& e) {  // gnuplot-iostream's way of saying fopen failed
        throw ReportError(script.string() + ": " + e.what() + ": " + report_detail::errno_text(errno));
    }
    if (std::filesystem::file_size(script) != figure.script.size())
        throw ReportError(script.string() + ": the gnuplot script was not written completely (disk full?)");
    const std::filesystem::path png = staged.stage(dir / (figure.name + ".png"));
    // The script draws <name>.png from <name>.dat unless told otherwise; here it is told the
    // temporary names, so a failing gnuplot leaves no half-drawn figure under the real name.
    const std::string names = "datafile=" + report_detail::gp_quote(data.filename().string()) +
                              "; outfile=" + report_detail::gp_quote(png.filename().string());
    auto run = report_detail::run_process({"gnuplot", "-e", names, script.filename().string()}, dir);
    const std::string target = (dir / (figure.name + ".png")).string();
    if (run.status != 0)
        throw ReportError("gnuplot failed to draw " + target + " (exit status " + std::to_string(run.status) +
                          "; line numbers are those of " + figure.name + ".gp, run under a temporary name):\n" +
                          run.output +
                          (run.status == 127 ? "Install gnuplot with the pngcairo terminal (Debian: gnuplot-nox).\n"
                                             : "") +
                          "Nothing in " + dir.string() + " was changed.");
    if (!report_detail::starts_with_png_magic(png))
        throw ReportError("gnuplot exited cleanly but wrote no PNG for " + target + ":\n" + run.output);
}

inline void render_figure(const Figure& figure, const std::filesystem::path& dir) {
    StagedFiles staged;
    stage_figure(figure, dir, staged);
    staged.commit();
}

}  // namespace kvgate
