// Experiment 2's report: the figure experiment2_invalidation_curve.png (TTFT against recomputed
// tokens, one marker per edit kind, the fit with its band, Experiment 1's measured trials on the
// same axes; beside it the server's reported reuse against the predicted reuse) and its section of
// summary.md. Both are drawn from the cells in results_curve.json, analysed again here.
#pragma once

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "kvgate/experiment/curve.hpp"
#include "kvgate/model/report_files.hpp"
#include "kvgate/model/results_json.hpp"
#include "kvgate/report/report_labels.hpp"
#include "kvgate/report/report_markdown.hpp"
#include "kvgate/report/report_plot.hpp"

namespace kvgate {

inline std::string curve_figure_name(const Experiment& e) { return e.id + "_invalidation_curve"; }

inline CurveFile read_curve_file(const std::filesystem::path& path) {
    const auto j = nlohmann::json::parse(report_detail::read_whole_file(path), nullptr, false);
    if (j.is_discarded()) throw ReportError(path.string() + ": not JSON; re-run kvgate curve");
    try {
        return parse_curve_json(j, path.string());
    } catch (const std::invalid_argument& e) {
        throw ReportError(e.what());
    }
}

namespace report_detail {

inline constexpr EditKind curve_kinds[] = {EditKind::none, EditKind::remove, EditKind::replace, EditKind::truncate};

// Marker shapes (gnuplot pt): circle, triangle, square, diamond, all filled.
inline int curve_marker(EditKind k) {
    switch (k) {
        case EditKind::none: return 7;
        case EditKind::remove: return 9;
        case EditKind::replace: return 5;
        case EditKind::truncate: return 13;
    }
    return 7;
}

// The measured prompt's length at each requested context (the full hits' prompt, the longest).
inline std::map<int, int> prompt_tokens_by_context(const std::vector<CurveCell>& cells) {
    std::map<int, int> out;
    for (const auto& c : cells) out[c.context_tokens] = std::max(out[c.context_tokens], c.measured_tokens);
    return out;
}

}  // namespace report_detail

inline Figure curve_figure(const Experiment& e, const CurveFile& f, const CurveAnalysis& a,
                           const std::optional<PhaseResult>& phase1) {
    using namespace report_detail;
    const std::string name = curve_figure_name(e);
    std::ostringstream d, plot_left, plot_right;
    d << "# kvgate data for " << name << ".gp. TTFT in ms; tokens in the model's tokens.\n";
    int index = 0;
    std::string sep_left, sep_right;
    auto left = [&](const std::string& what) {
        plot_left << sep_left << (sep_left.empty() ? "plot " : "     ") << "datafile index \"[b" << index << "]\" " << what;
        sep_left = ", \\\n";
    };
    auto right = [&](const std::string& what) {
        plot_right << sep_right << (sep_right.empty() ? "plot " : "     ") << "datafile index \"[b" << index << "]\" " << what;
        sep_right = ", \\\n";
    };
    // Fit bands first, so the markers are drawn over them.
    if (a.fit.ok()) {
        for (const auto& [context, prompt] : prompt_tokens_by_context(f.cells)) {
            d << "\n\n# [b" << index << "] fit at context " << context << ": recomputed_tokens ttft mean_low mean_high\n";
            const int steps = 60;
            for (int i = 0; i <= steps; ++i) {
                const double r = 1 + (prompt - 1.0) * i / steps;
                const auto p = predict(a.fit, r, attended_context(prompt - r, r));
                d << dat_number(r) << " " << dat_number(p.ttft_ms) << " " << dat_number(p.mean_low) << " "
                  << dat_number(p.mean_high) << "\n";
            }
            left("using 1:3:4 with filledcurves lc rgb \"#C0999999\" title " +
                 gp_quote("fit, " + format_fixed(f.confidence * 100, 0) + "% band, " + std::to_string(prompt) +
                          "-token prompt"));
            left("using 1:2 with lines lc rgb \"#555555\" lw 1.5 notitle");  // the same block
            ++index;
        }
    }
    const char* colours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7"};
    for (std::size_t k = 0; k < 4; ++k) {
        const EditKind kind = curve_kinds[k];
        std::ostringstream rows;
        for (const auto& c : f.cells)
            if (c.kind == kind && c.flag.empty())
                rows << c.predicted_recompute << " " << dat_number(c.ttft_ms) << " " << c.predicted_reuse << " "
                     << (c.reported_cached < 0 ? std::string("NaN") : std::to_string(c.reported_cached)) << "\n";
        if (rows.str().empty()) continue;
        d << "\n\n# [b" << index << "] edit " << edit_kind_name(kind) << ", agreeing cells: recomputed_tokens ttft predicted_reuse reported_cached\n"
          << rows.str();
        const std::string title = kind == EditKind::none ? "full hit" : std::string(edit_kind_name(kind)) + " an exchange";
        left("using 1:2 with points pt " + std::to_string(curve_marker(kind)) + " ps 1.1 lc rgb " + gp_quote(colours[k]) +
             " title " + gp_quote(title));
        // Open markers of decreasing size: kinds that land on the same (predicted, reported) stay visible.
        right("using 3:4 with points pt " + std::to_string(curve_marker(kind) - 1) + " ps " +
              format_fixed(2.4 - 0.45 * static_cast<double>(k), 2) + " lw 1.5 lc rgb " + gp_quote(colours[k]) +
              " title " + gp_quote(title));
        ++index;
    }
    {
        std::ostringstream rows;
        for (const auto& c : f.cells)
            if (!c.flag.empty())
                rows << c.predicted_recompute << " " << dat_number(c.ttft_ms) << " " << c.predicted_reuse << " "
                     << (c.reported_cached < 0 ? std::string("0") : std::to_string(c.reported_cached)) << "\n";
        if (!rows.str().empty()) {
            d << "\n\n# [b" << index << "] flagged cells (left out of the fit): recomputed_tokens ttft predicted_reuse reported_cached\n"
              << rows.str();
            left("using 1:2 with points pt 2 ps 1.4 lc rgb \"#000000\" title \"flagged (not fitted)\"");
            right("using 3:4 with points pt 2 ps 1.4 lc rgb \"#000000\" title \"flagged\"");
            ++index;
        }
    }
    if (phase1) {
        std::ostringstream rows;
        for (Arm arm : {Arm::hit, Arm::miss})
            for (const Trial* t : phase1->measured(arm)) {
                const int prompt = t->measured.usage.prompt_tokens >= 0 ? t->measured.usage.prompt_tokens
                                                                        : t->prompt_tokens_expected;
                rows << prompt - std::max(0, t->measured.usage.cached_tokens) << " " << dat_number(t->ttft_ms) << "\n";
            }
        if (!rows.str().empty()) {
            d << "\n\n# [b" << index << "] Experiment 1 (" << phase1->phase.title << "), measured trials: recomputed_tokens ttft\n" << rows.str();
            left("using 1:2 with points pt 6 ps 1.6 lw 2 lc rgb \"#E69F00\" title \"Experiment 1 trials (hit, miss)\"");
            ++index;
        }
    }
    int max_reuse = 1;
    for (const auto& c : f.cells) max_reuse = std::max({max_reuse, c.predicted_reuse, c.reported_cached});
    d << "\n\n# [b" << index << "] the diagonal: reported = predicted\n0 0\n" << max_reuse << " " << max_reuse << "\n";
    right("using 1:2 with lines dt 2 lc rgb \"#777777\" title \"reported = predicted\"");
    ++index;

    std::ostringstream s;
    s << script_preamble(name, "TTFT against recomputed tokens, and reported against predicted reuse", 1500, 620)
      << "unset offsets\nset xtics scale 1\nset grid xtics ytics lc rgb \"#dddddd\"\n"
      << "set key outside below center horizontal box samplen 2 maxrows 2\n"
      << "set style fill transparent solid 0.35 noborder\n"
      << "set multiplot layout 1,2 title "
      << gp_quote(e.title + " \u2014 model " + f.model + " \u00b7 " + f.engine + " \u00b7 " + std::to_string(a.cells) +
                  " cells, " + std::to_string(a.flagged) + " flagged")
      << " font \",14\"\n"
      << "set title " << gp_quote(a.fit.ok() ? "TTFT vs recomputed tokens; fit " +
                                                   std::string(a.fit.attention_term() ? "t0 + a*R + b*R*C" : "t0 + a*R")
                                             : "TTFT vs recomputed tokens; no fit: " + a.fit.problem)
      << "\nset xlabel \"recomputed prompt tokens R\"\nset ylabel \"TTFT (ms)\"\nset xrange [0:*]\n"
      << plot_left.str() << "\n"
      << "set key inside bottom right\n"
      << "set title \"server-reported cached tokens vs predicted reuse\"\n"
      << "set xlabel \"predicted reuse (tokens)\"\nset ylabel \"reported cached tokens\"\nset yrange [0:*]\n"
      << plot_right.str() << "\n"
      << "unset multiplot\nunset output\n";
    return {name, d.str(), s.str()};
}

// The summary.md section: the answer in one sentence, then the fit, the evidence, Experiment 1.
inline std::string curve_markdown(const Experiment& e, const CurveFile& f, const CurveAnalysis& a,
                                  const std::optional<PhaseResult>& phase1) {
    using report_detail::format_fixed;
    std::ostringstream s;
    s << "\n## " << e.title << " (Experiment 2)\n\n";
    const auto& fit = a.fit;
    if (!fit.ok()) {
        s << "No cost model: " << fit.problem << ".\n";
    } else {
        constexpr int kConversation = 1000;
        const auto at25 = removal_cost(fit, f.shape, kConversation, 0.25, f.block_size);
        const auto at90 = removal_cost(fit, f.shape, kConversation, 0.90, f.block_size);
        auto ms = [](const CostPrediction& p) {
            return format_fixed(p.ttft_ms, 0) + " ms [" + format_fixed(p.mean_low, 0) + ", " + format_fixed(p.mean_high, 0) + "]";
        };
        int longest = 0;
        for (const auto& c : f.cells) longest = std::max(longest, c.measured_tokens);
        s << "**Removing a turn at 25 % of a 1,000-token conversation costs about " << ms(at25.ttft)
          << " of TTFT on this engine (" << at25.recompute_tokens << " tokens recomputed); at 90 %, " << ms(at90.ttft)
          << " (" << at90.recompute_tokens << " tokens); the unedited conversation's next request: " << ms(at25.hit_ttft)
          << " (" << at25.hit_recompute_tokens << " tokens).** (From the fit; the sweep measured prompts of up to "
          << longest << " tokens; block size " << f.block_size << "; intervals at " << format_fixed(fit.confidence * 100, 0)
          << "%.)\n\n";
        auto coef = [](const Coefficient& c, int digits) {
            return format_fixed(c.estimate, digits) + " [" + format_fixed(c.low, digits) + ", " + format_fixed(c.high, digits) + "]";
        };
        s << "| term | estimate [" << format_fixed(fit.confidence * 100, 0) << "% interval] |\n|---|---|\n"
          << "| t0, fixed part | " << coef(fit.fixed_ms, 2) << " ms |\n"
          << "| a, per recomputed token | " << coef(fit.ms_per_token, 4) << " ms |\n";
        if (fit.attention_term())
            s << "| b, per recomputed token per attended token | " << coef(fit.ms_per_token_context, 7) << " ms |\n";
        if (a.per_token)
            s << "| cost per recomputed token at context " << format_fixed(a.per_token_context, 0) << " | "
              << format_fixed(a.per_token->estimate, 4) << " [" << format_fixed(a.per_token->low, 4) << ", "
              << format_fixed(a.per_token->high, 4) << "] ms |\n";
        s << "\nModel: " << report_detail::md_line(fit.selection) << "; " << fit.n << " cells, residual sd "
          << format_fixed(fit.residual_sd, 2) << " ms, R\u00b2 " << format_fixed(fit.r_squared, 3) << ".\n";
    }
    s << "\nEvidence: " << a.cells - a.flagged << " of " << a.cells
      << " cells have server-reported cached tokens equal to the predicted reuse (block size " << f.block_size << ").";
    std::map<std::string, int> causes;
    for (const auto& c : f.cells)
        if (!c.flag.empty()) ++causes[c.flag];
    for (const auto& [cause, n] : causes) s << "\n- flagged, not fitted (" << n << "): " << report_detail::md_line(cause);
    s << "\n";
    if (phase1 && fit.ok()) {
        const auto arms = predict_experiment1(fit, *phase1);
        if (!arms.empty()) {
            s << "\nExperiment 1 (" << phase1->phase.title << ") from its sizes, predicted by the curve vs measured:\n\n"
              << "| arm | recomputed tokens | predicted TTFT (mean) [prediction interval] | measured mean TTFT | within |\n"
              << "|---|---|---|---|---|\n";
            for (const auto& p : arms)
                s << "| " << to_string(p.arm) << " | " << format_fixed(p.recompute_tokens, 0) << " | "
                  << format_fixed(p.predicted.ttft_ms, 1) << " ms [" << format_fixed(p.predicted.low, 1) << ", "
                  << format_fixed(p.predicted.high, 1) << "] | " << format_fixed(p.measured_mean_ms, 1) << " ms (n="
                  << p.n << ") | " << (p.within() ? "yes" : "no") << " |\n";
        }
    }
    s << "\nSweep: " << f.cells.size() << " cells, wall time " << format_fixed(f.wall_time_s, 1) << " s"
      << (f.complete ? "" : " (stopped early by a fault)") << ", run " << f.timestamp << ".\n\n"
      << "![" << e.title << "](" << curve_figure_name(e) << ".png)\n";
    return s.str();
}

// Experiment 1's phase 1 results beside the curve, if the directory holds them.
inline std::optional<PhaseResult> curve_phase1(const std::filesystem::path& in_dir) {
    const auto* p1 = find_phase("phase1");
    if (!p1) return std::nullopt;
    const auto path = results_path(in_dir, *p1);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return std::nullopt;
    return read_results_file(path, p1);
}

}  // namespace kvgate
