// A Markdown summary of one or more phase results: what was decided, from which numbers, on what
// evidence, and where it ran. Plain GitHub-flavoured Markdown, fit for $GITHUB_STEP_SUMMARY.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "kvgate/records.hpp"
#include "kvgate/report_labels.hpp"

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

inline std::string md_tokens(double v) { return v < 0 ? "not reported" : format_fixed(v, 0); }

inline std::string md_pct(double fraction) { return format_fixed(fraction * 100, 0) + "%"; }

inline std::string md_evidence(const PhaseResult& r) {
    std::ostringstream s;
    bool cached = r.hit_stats.cached_tokens_median >= 0 || r.miss_stats.cached_tokens_median >= 0;
    if (cached)
        s << "cached prompt tokens (median, server-reported): hit " << md_tokens(r.hit_stats.cached_tokens_median)
          << ", miss " << md_tokens(r.miss_stats.cached_tokens_median);
    if (r.counters.available) {
        s << (cached ? "; " : "") << "Prometheus prefix-cache counters over the measured run: "
          << format_fixed(r.counters.queries, 0) << " tokens looked up, " << format_fixed(r.counters.hits, 0) << " hit";
        if (r.counters.queries > 0) s << " (" << format_fixed(100 * r.counters.hits / r.counters.queries, 1) << "%)";
    }
    if (!cached && !r.counters.available)
        s << "timing only — the server reported neither cached tokens nor prefix-cache counters";
    return s.str();
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

    s << "| | cache hit [A,B,Q] | cache miss [B,Q] |\n"
      << "|---|---:|---:|\n"
      << "| TTFT median (ms) | " << format_fixed(hit.ttft_median, 1) << " | " << format_fixed(miss.ttft_median, 1)
      << " |\n"
      << "| TTFT mean ± stdev (ms) | " << format_fixed(hit.ttft_mean, 1) << " ± " << format_fixed(hit.ttft_stdev, 1)
      << " | " << format_fixed(miss.ttft_mean, 1) << " ± " << format_fixed(miss.ttft_stdev, 1) << " |\n"
      << "| TTFT p90 (ms) | " << format_fixed(hit.ttft_p90, 1) << " | " << format_fixed(miss.ttft_p90, 1) << " |\n"
      << "| throughput median (tokens/s) | " << format_fixed(hit.throughput_median, 1) << " | "
      << format_fixed(miss.throughput_median, 1) << " |\n"
      << "| prompt tokens (median) | " << hit.prompt_tokens << " | " << miss.prompt_tokens << " |\n"
      << "| cached tokens (median) | " << md_tokens(hit.cached_tokens_median) << " | "
      << md_tokens(miss.cached_tokens_median) << " |\n"
      << "| measured trials (n) | " << hit.n << " | " << miss.n << " |\n\n";

    s << "- **Miss/hit TTFT ratio:** " << format_fixed(v.ratio, 3) << ", " << md_pct(v.confidence) << " interval ["
      << format_fixed(v.ratio_low, 3) << ", " << format_fixed(v.ratio_high, 3) << "]"
      << (v.method.empty() ? "" : " (" + md_line(v.method) + ")") << "\n"
      << "- **Threshold:** a miss must be at least " << format_fixed(v.threshold_pct, 1)
      << "% slower (ratio ≥ " << format_fixed(threshold_ratio(v.threshold_pct), 3) << ")\n"
      << "- **TTFT degradation** (mean miss vs mean hit, the seed's ttft_degradation_pct): " << signed_pct(r.ttft_degradation_pct)
      << "\n"
      << "- **Cache evidence:** " << md_evidence(r) << "\n"
      << "- **Engine:** " << md_line(engine_title(r.engine))
      << (r.engine.endpoint.empty() ? "" : ", " + md_code(r.engine.endpoint))
      << (r.engine.url.empty() ? "" : " at " + md_code(r.engine.url)) << ", block size "
      << (r.engine.block_size > 0 ? std::to_string(r.engine.block_size) : std::string("unknown"))
      << ", prefix caching " << (r.engine.prefix_caching ? "on" : "off") << "\n"
      << "- **Model:** " << md_code(r.settings.model) << "\n"
      << "- **Sizes (tokens):** A " << r.settings.context_a_tokens << ", B " << r.settings.context_b_tokens << ", Q "
      << r.settings.query_tokens << ", output ≤ " << r.settings.max_output_tokens
      << (r.sizes_estimated ? " (estimated: the tokenizer could not be asked)" : "") << "\n"
      << "- **Run:** started " << (r.timestamp.empty() ? std::string("at an unrecorded time") : md_line(r.timestamp))
      << ", " << format_fixed(r.wall_time_s, 1) << " s, "
      << r.settings.trials << " trials per arm + " << r.settings.warmup << " warm-up, seed " << r.settings.seed
      << ", git revision " << (r.git_revision.empty() ? std::string("unknown") : md_code(r.git_revision)) << "\n";
    if (r.fault) {
        const Fault& f = *r.fault;
        s << "- **Fault:** " << md_code(to_string(f.kind)) << " in "
          << (f.trial >= 1 ? "trial " + std::to_string(f.trial) + ", " + to_string(f.request) + " request"
                           : std::string("setup, before any trial"))
          << ", stage " << to_string(f.stage) << "\n\n"
          << md_fence(f.message, 3) << "text\n" << f.message << "\n" << md_fence(f.message, 3) << "\n";
    }
    s << "\n";
}

}  // namespace report_detail

// `figure_files`: image paths relative to where the Markdown will be read (e.g. beside it).
inline std::string summary_markdown(const std::vector<PhaseResult>& phases,
                                    const std::vector<std::string>& figure_files) {
    std::ostringstream s;
    s << "# kvgate: prefix-cache invalidation cost\n\n";
    if (phases.empty()) s << "No phase results.\n\n";
    for (const auto& phase : phases) report_detail::md_phase(s, phase);
    if (!figure_files.empty()) {
        s << "## Figures\n\n";
        for (const auto& f : figure_files)
            s << "![" << std::filesystem::path(f).stem().string() << "](" << f << ")\n\n";
    }
    return s.str();
}

}  // namespace kvgate
