// A Markdown summary of one or more phase results: what was decided, from which numbers, on what
// evidence, and where it ran. Plain GitHub-flavoured Markdown, fit for $GITHUB_STEP_SUMMARY.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "kvgate/experiment/verdict.hpp"
#include "kvgate/model/records.hpp"
#include "kvgate/report/report_labels.hpp"
#include "kvgate/report/report_model.hpp"
#include "kvgate/stats/stats.hpp"

namespace kvgate {

namespace report_detail {

// Server messages and reasons may hold anything; keep each on its one line of the layout.
inline std::string md_line(const std::string& s) {
    std::string out = s;
    for (char& c : out)
        if (c == '\n' || c == '\r') c = ' ';
    return out;
}

// A run of backticks longer than any in `s`, so code spans and blocks survive backticks in the text.
inline std::string md_fence(const std::string& s, std::size_t at_least) {
    std::size_t longest = 0, run = 0;
    for (char c : s) {
        run = c == '`' ? run + 1 : 0;
        longest = std::max(longest, run);
    }
    return std::string(std::max(longest + 1, at_least), '`');
}

inline std::string md_code(const std::string& s) {
    std::string fence = md_fence(s, 1);
    // Padding keeps a leading or trailing backtick from joining the fence; otherwise it is noise.
    std::string pad = !s.empty() && (s.front() == '`' || s.back() == '`') ? " " : "";
    return fence + pad + md_line(s) + pad + fence;
}

inline std::string md_outcome(Outcome o) {
    std::string name = to_string(o);
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return name;
}

// Milliseconds: two decimals under 10 ms (a GPU's ~1 ms saving stays readable), one above.
inline std::string md_ms(double v) { return format_fixed(v, std::fabs(v) < 10 ? 2 : 1); }

inline std::string md_tokens(double v) { return v < 0 ? "not reported" : format_fixed(v, 0); }

inline std::string md_pct(double fraction) { return format_fixed(fraction * 100, 0) + "%"; }

inline std::string md_evidence(const PhaseResult& r) {
    std::ostringstream s;
    const auto arms = shown_arms(r);
    bool cached = false;
    for (Arm arm : arms) cached = cached || r.stats(arm).cached_tokens_median >= 0;
    if (cached) {
        s << "cached prompt tokens (median, server-reported):";
        for (Arm arm : arms)
            s << (arm == arms.front() ? " " : ", ") << arm_word(arm) << " " << md_tokens(r.stats(arm).cached_tokens_median);
    }
    if (r.counters.available) {
        s << (cached ? "; " : "") << "Prometheus prefix-cache counters over the measured run: "
          << format_fixed(r.counters.queries, 0) << " tokens looked up, " << format_fixed(r.counters.hits, 0) << " hit";
        if (r.counters.queries > 0) s << " (" << format_fixed(100 * r.counters.hits / r.counters.queries, 1) << "%)";
    }
    if (!cached && !r.counters.available)
        s << "timing only — the server reported neither cached tokens nor prefix-cache counters";
    return s.str();
}

inline std::string md_replica(const std::optional<Placement>& p) {
    if (!p) return "not recorded";
    return p->placed() ? "replica " + std::to_string(p->replica) : describe(*p);
}

// A fleet: the router, the locality check and the reuse rate against chance, each replica's share,
// and where every trial's warm-up and query went.
inline void md_fleet(std::ostringstream& s, const PhaseResult& r) {
    const auto summary = fleet_placement(r);
    if (!summary) return;
    s << "### Placement through the router\n\n"
      << "- **Router:** " << md_line(router_policy_name(r.engine)) << " at " << md_code(r.engine.url) << ", "
      << summary->replicas << " replica" << (summary->replicas == 1 ? "" : "s") << "\n"
      << "- **Locality (hit arm, measured trials):** " << md_line(summary->message()) << "\n"
      << "- **Reuse rate:** " << md_line(summary->reuse_line()) << "\n\n"
      << "| replica | URL | requests served (measured trials) | prompt tokens looked up | hit | Prometheus Δ "
         "queries over the run | Δ hits |\n|---:|---|---:|---:|---:|---:|---:|\n";
    for (std::size_t i = 0; i < r.engine.replica_urls.size(); ++i) {
        const ReplicaTally& t = summary->per_replica[i];
        const bool prom = i < r.counters.per_replica.size() && r.counters.per_replica[i].available;
        s << "| " << i << " | " << md_code(r.engine.replica_urls[i]) << " | " << t.requests << " | "
          << format_fixed(t.queried_tokens, 0) << " | " << format_fixed(t.hit_tokens, 0) << " | "
          << (prom ? format_fixed(r.counters.per_replica[i].queries, 0) : std::string("unavailable")) << " | "
          << (prom ? format_fixed(r.counters.per_replica[i].hits, 0) : std::string("unavailable")) << " |\n";
    }
    s << "\n| trial | arm | warm-up [A,B] served by | query served by | query cached tokens | |\n"
      << "|---:|---|---|---|---:|---|\n";
    for (const auto& t : r.trials) {
        const bool moved = t.arm == Arm::hit && t.warm.placement && t.measured.placement &&
                           t.warm.placement->placed() && t.measured.placement->placed() &&
                           t.warm.placement->replica != t.measured.placement->replica;
        s << "| " << t.number() << " | " << to_string(t.arm) << (t.warmup ? " (warm-up)" : "") << " | "
          << md_line(md_replica(t.warm.placement)) << " | " << md_line(md_replica(t.measured.placement)) << " | "
          << md_tokens(t.measured.usage.cached_tokens) << " | "
          << (moved ? "**moved: the hit could not use the warmed cache**" : "") << " |\n";
    }
    s << "\n";
}

// The TTFT the gate did not compare, where every measured trial has it: the engine's own prompt
// time beside the client's, or the client's beside the engine's (KVGATE_TTFT=engine).
inline std::string md_other_ttft_row(const PhaseResult& r) {
    const bool engine_gated = r.settings.gate.ttft == TtftSource::engine;
    const auto other = [&](Arm arm) -> std::optional<double> {
        if (!engine_gated) return engine_ttft_median(r.measured(arm));
        std::vector<double> client;
        for (const Trial* t : r.measured(arm))
            if (t->measured.stamps.first_token_ms) client.push_back(*t->measured.stamps.first_token_ms);
        return client.empty() ? std::nullopt : std::optional<double>(median(client));
    };
    std::string row = engine_gated ? "| client TTFT median (ms), not gated |" : "| engine's own TTFT median (ms), not gated |";
    for (Arm arm : shown_arms(r)) {
        const auto value = other(arm);
        if (!value) return "";
        row += " " + md_ms(*value) + " |";
    }
    return row + "\n";
}

// Expected (from the rendered ids) vs reported cached tokens of one arm's measured requests.
inline std::string md_reuse(const PhaseResult& r, Arm arm) {
    std::vector<double> expected, allowed;
    std::map<std::string, int> classes;
    int checked = 0;
    const auto trials = r.measured(arm);
    for (const Trial* t : trials) {
        if (!t->reuse.checked) continue;
        ++checked;
        expected.push_back(t->reuse.expected);
        allowed.push_back(t->reuse.allowed);
        if (!t->reuse.reported_class.empty()) ++classes[t->reuse.reported_class];
    }
    if (checked == 0) return "not checked";
    std::string out = (arm == Arm::hit ? "expected " + format_fixed(median(expected), 0)
                                       : "allowed ≤ " + format_fixed(median(allowed), 0)) +
                      " (median of " + std::to_string(checked) + ");";
    for (const auto& [name, n] : classes) out += " " + name + " " + std::to_string(n);
    return out;
}

// One contrast in words: ratio, interval at the look's confidence, pairs, and its own outcome.
inline std::string md_contrast(const ShownContrast& c) {
    if (!c.shown) return c.absent;
    std::string out = format_fixed(c.ratio, 3) + ", ";
    out += c.interval() ? confidence_pct(c.look_confidence) + " interval [" + format_fixed(c.low, 3) + ", " +
                              format_fixed(c.high, 3) + "]"
                        : std::string("no interval");
    if (c.pairs > 0) out += " over " + std::to_string(c.pairs) + (c.pairs == 1 ? " pair" : " pairs");
    if (c.outcome) out += " — **" + md_outcome(*c.outcome) + "**, " + contrast_outcome_words(*c.outcome);
    return out;
}

// What the verdict was decided on, as the result recorded it: both contrasts against the bar, how many
// rounds and why, and what the arms imply per token. Nothing here is computed again.
inline void md_decision(std::ostringstream& s, const PhaseResult& r) {
    const Verdict& v = r.verdict;
    const bool cold = has_cold_arm(r);
    s << "### Decision\n\n"
      << "- **Cache saving, cold/hit TTFT** (cold [A',B,Q] is as long as the hit, with nothing cached): "
      << md_line(md_contrast(cache_contrast(r))) << "\n"
      << "- **Invalidation cost, miss/hit TTFT** (A removed: the seed's test): "
      << md_line(md_contrast(invalidation_contrast(r))) << "\n"
      << "- **Threshold:** " << (cold ? "cold and miss must each be" : "a miss must be") << " at least "
      << format_fixed(v.threshold_pct, 1) << "% slower than the hit (ratio ≥ "
      << format_fixed(threshold_ratio(v.threshold_pct), 3) << "); a contrast passes when its whole interval lies "
         "above the bar, fails when below it\n"
      << "- **Rounds:** ";
    if (v.rounds > 0)
        s << v.rounds << " measured round" << (v.rounds == 1 ? "" : "s") << " (one trial of each arm per round)"
          << (v.rounds_reason.empty() ? "" : ": " + md_line(v.rounds_reason)) << "\n";
    else if (!v.rounds_reason.empty())
        s << md_line(v.rounds_reason) << "\n";
    else
        s << "not recorded (a results file from before the sequential decision; " << r.settings.hit_miss.trials
          << " trials per arm were configured)\n";
    if (std::isfinite(v.saving_per_cached_token_ms)) {
        s << "- **Cost per token:** the cache saves " << format_fixed(1000 * v.saving_per_cached_token_ms, 1)
          << " µs per cached token";
        if (std::isfinite(v.per_prompt_token_ms))
            s << "; the server spends " << format_fixed(1000 * v.per_prompt_token_ms, 1)
              << " µs on every prompt token, cached or not";
        s << "\n";
    }
    if (!v.physics.empty()) s << "- **Physics:** " << md_line(v.physics) << "\n";
    if (!v.method.empty()) s << "- **Method:** " << md_line(v.method) << "\n";
    s << "\n";
}

inline void md_phase(std::ostringstream& s, const PhaseResult& r) {
    const Verdict& v = r.verdict;
    const ArmStats& hit = r.hit_stats;
    const ArmStats& miss = r.miss_stats;
    s << "## " << r.phase.title << " (" << md_code(r.phase.seed_key) << ", " << md_code(r.phase.results_file)
      << ")\n\n"
      << "**" << md_outcome(v.outcome) << "**" << (v.reason.empty() ? "" : " — " + md_line(v.reason)) << "\n\n";
    if (!v.fix.empty()) s << "**Fix:** " << md_line(v.fix) << "\n\n";
    if (!r.complete)
        s << (r.fault ? "**Incomplete run:** a fault stopped it before every trial was measured.\n\n"
                      : "**Partial results:** the run had not finished when this file was last written (it was "
                        "killed, or is still running).\n\n");
    if (r.early_stop) s << "**Stopped early:** " << md_line(*r.early_stop) << "\n\n";

    const std::string ttft = r.settings.gate.ttft == TtftSource::engine ? "engine's own TTFT" : "TTFT";
    const std::vector<Arm> arms = shown_arms(r);
    // One row of the arm table: its name, then each shown arm's cell.
    const auto row = [&](const std::string& name, const std::function<std::string(const ArmStats&, Arm)>& cell) {
        std::string out = "| " + name + " |";
        for (Arm arm : arms) out += " " + cell(r.stats(arm), arm) + " |";
        return out + "\n";
    };
    s << "|";
    for (Arm arm : arms) s << (arm == arms.front() ? " |" : "") << " " << arm_condition(arm) << " |";
    s << "\n|---|";
    for (std::size_t i = 0; i < arms.size(); ++i) s << "---:|";
    s << "\n"
      << row(ttft + " median (ms)", [](const ArmStats& a, Arm) { return md_ms(a.ttft_median); })
      << row(ttft + " mean ± stdev (ms)",
             [](const ArmStats& a, Arm) { return md_ms(a.ttft_mean) + " ± " + md_ms(a.ttft_stdev); })
      << row(ttft + " p90 (ms)", [](const ArmStats& a, Arm) { return md_ms(a.ttft_p90); })
      << md_other_ttft_row(r)
      << row("throughput median (tokens/s)", [](const ArmStats& a, Arm) { return format_fixed(a.throughput_median, 1); })
      << row("prompt tokens (median)", [](const ArmStats& a, Arm) { return std::to_string(a.prompt_tokens); })
      << row("cached tokens (median)", [](const ArmStats& a, Arm) { return md_tokens(a.cached_tokens_median); })
      << row("expected reuse (from the rendered ids)", [&](const ArmStats&, Arm arm) { return md_reuse(r, arm); })
      << row("measured trials (n)", [](const ArmStats& a, Arm) { return std::to_string(a.n); }) << "\n";

    md_decision(s, r);

    s << "### Run\n\n"
      << "- **Saving:** " << md_ms(miss.ttft_median - hit.ttft_median) << " ms (median miss − median hit TTFT)\n";
    if (has_cold_arm(r))
        s << "- **Saving at equal length:** " << md_ms(r.cold_stats.ttft_median - hit.ttft_median)
          << " ms (median cold − median hit TTFT)\n";
    s << "- **TTFT degradation** (mean miss vs mean hit, the seed's ttft_degradation_pct): " << signed_pct(r.ttft_degradation_pct)
      << "\n"
      << "- **Cache evidence:** " << md_evidence(r) << "\n"
      << "- **Engine:** " << md_line(engine_title(r.engine))
      << (r.engine.endpoint.empty() ? "" : ", " + md_code(r.engine.endpoint))
      << (r.engine.url.empty() ? "" : " at " + md_code(r.engine.url)) << ", block size "
      << (r.engine.block_size > 0 ? std::to_string(r.engine.block_size) : std::string("unknown"))
      << ", prefix caching " << (r.engine.prefix_caching ? "on" : "off") << "\n"
      << (r.block_rounding.empty() ? "" : "- **Block rounding:** " + md_line(r.block_rounding) + "\n")
      << "- **Model:** " << md_code(r.settings.target.model) << "\n"
      << "- **Sizes (tokens):** A " << r.settings.hit_miss.context_a_tokens << ", B " << r.settings.hit_miss.context_b_tokens << ", Q "
      << r.settings.hit_miss.query_tokens << ", output ≤ " << r.settings.hit_miss.max_output_tokens
      << (r.sizes_estimated ? " (estimated: the tokenizer could not be asked)" : "") << "\n"
      << "- **Run:** started " << (r.timestamp.empty() ? std::string("at an unrecorded time") : md_line(r.timestamp))
      << ", " << format_fixed(r.wall_time_s, 1) << " s, "
      << r.settings.hit_miss.trials << " trials per arm + " << r.settings.hit_miss.warmup << " warm-up, seed " << r.settings.seed
      << ", git revision " << (r.git_revision.empty() ? std::string("unknown") : md_code(r.git_revision)) << "\n";
    for (const Trial* t : r.measured(Arm::hit))
        if (!t->reuse.divergence.empty()) {
            s << "- **Divergence** (trial " << t->number() << "): " << md_line(t->reuse.divergence) << "\n";
            break;
        }
    if (r.baseline) {
        const BaselineRecord& b = *r.baseline;
        s << "- **Baseline gate:** " << md_code(to_string(b.outcome)) << " against " << md_code(b.path) << " (revision "
          << md_code(b.revision) << ", " << md_line(b.timestamp) << "): miss/hit ratio "
          << format_fixed(b.current_ratio, 3) << " now vs " << format_fixed(b.baseline_ratio, 3)
          << " in the baseline; current/baseline " << format_fixed(b.ratio_estimate, 3) << ", "
          << md_pct(b.confidence) << " interval [" << format_fixed(b.ratio_low, 3) << ", "
          << format_fixed(b.ratio_high, 3) << "], bar " << format_fixed(b.ratio_bar, 3) << " (−"
          << format_fixed(b.regression_pct, 0) << "%); hit TTFT current/baseline " << format_fixed(b.hit_estimate, 3)
          << " [" << format_fixed(b.hit_low, 3) << ", " << format_fixed(b.hit_high, 3) << "]\n";
        for (const auto& d : b.differences) s << "  - declared comparable despite: " << md_line(d) << "\n";
    }
    if (r.fault) {
        const Fault& f = *r.fault;
        s << "- **Fault:** " << md_code(to_string(f.kind)) << " in "
          << (f.trial >= 1 ? "trial " + std::to_string(f.trial) + ", " + to_string(f.request) + " request"
                           : std::string("setup, before any trial"))
          << ", stage " << to_string(f.stage) << "\n\n"
          << md_fence(f.message, 3) << "text\n" << f.message << "\n" << md_fence(f.message, 3) << "\n";
    }
    s << "\n";
    md_fleet(s, r);
}

// Each phase's section, then the figures under `figures_heading`.
inline std::string md_phases(const std::vector<PhaseResult>& phases, const std::vector<std::string>& figure_files,
                             const std::string& figures_heading) {
    std::ostringstream s;
    if (phases.empty()) s << "No phase results.\n\n";
    for (const auto& phase : phases) md_phase(s, phase);
    if (!figure_files.empty()) {
        s << "## " << figures_heading << "\n\n";
        for (const auto& f : figure_files)
            s << "![" << std::filesystem::path(f).stem().string() << "](" << f << ")\n\n";
    }
    return s.str();
}

}  // namespace report_detail

// The head of a directory's summary.md: the overall outcome, then every result's verdict, so no
// experiment's verdict hides behind another's sections.
inline std::string overview_markdown(const std::vector<ResultLine>& results) {
    using report_detail::md_outcome;
    std::ostringstream s;
    s << "**" << md_outcome(overall_outcome(results)) << "** — the worst verdict of the " << results.size()
      << " result" << (results.size() == 1 ? "" : "s") << " in this directory:\n\n"
      << "| result | results file | verdict |\n|---|---|---|\n";
    for (const auto& r : results)
        s << "| " << r.title << " | `" << r.results_file << "` | " << md_outcome(r.outcome)
          << (r.complete ? "" : " (incomplete run)") << " |\n";
    s << "\n";
    return s.str();
}

// `figure_files`: image paths relative to where the Markdown will be read (e.g. beside it).
inline std::string summary_markdown(const std::vector<PhaseResult>& phases,
                                    const std::vector<std::string>& figure_files) {
    return "# kvgate: prefix-cache invalidation cost\n\n" + report_detail::md_phases(phases, figure_files, "Figures");
}

}  // namespace kvgate
