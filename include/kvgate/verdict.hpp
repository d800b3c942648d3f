// From measured trials to per-arm statistics and a verdict: pass / fail / indeterminate /
// unverified / error, with the reason in numbers and, when the numbers cannot decide, the fix.
//
// Evidence comes before timing: a miss arm that was served from cache makes the experiment
// invalid (unverified); a hit arm with nothing cached means the cache did not work (fail). Only
// then does the paired interval on miss/hit TTFT decide against the threshold.
#pragma once

#include <cmath>
#include <cstdio>
#include <optional>
#include <limits>
#include <string>
#include <vector>

#include "evidence.hpp"
#include "placement.hpp"
#include "records.hpp"
#include "reuse_check.hpp"
#include "stats.hpp"

namespace kvgate {

inline ArmStats arm_stats(const std::vector<const Trial*>& trials) {
    ArmStats s;
    std::vector<double> ttft, tput, prompt, cached;
    for (const Trial* t : trials) {
        ttft.push_back(t->ttft_ms);
        tput.push_back(t->throughput);
        prompt.push_back(t->measured.usage.prompt_tokens >= 0 ? t->measured.usage.prompt_tokens
                                                              : t->prompt_tokens_expected);
        if (t->measured.usage.cached_tokens >= 0) cached.push_back(t->measured.usage.cached_tokens);
    }
    s.n = static_cast<int>(trials.size());
    if (s.n == 0) {  // no measured trial: unknown (null in JSON, no bar in a figure), not zero
        const double nan = std::numeric_limits<double>::quiet_NaN();
        s.ttft_mean = s.ttft_median = s.ttft_stdev = s.ttft_p90 = nan;
        s.throughput_mean = s.throughput_median = s.throughput_stdev = s.throughput_p90 = nan;
        return s;
    }
    s.ttft_mean = mean(ttft);
    s.ttft_median = median(ttft);
    s.ttft_stdev = stdev(ttft);
    s.ttft_p90 = quantile(ttft, 0.9);
    s.throughput_mean = mean(tput);
    s.throughput_median = median(tput);
    s.throughput_stdev = stdev(tput);
    s.throughput_p90 = quantile(tput, 0.9);
    s.prompt_tokens = static_cast<int>(std::lround(median(prompt)));
    if (!cached.empty() && cached.size() == trials.size()) s.cached_tokens_median = median(cached);
    return s;
}

namespace detail {

inline std::string fmt(const char* format, double a, double b = 0, double c = 0, double d = 0) {
    char buf[256];
    std::snprintf(buf, sizeof buf, format, a, b, c, d);
    return buf;
}

}  // namespace detail

// Median of the engine's own TTFT (engine_ttft_ms, e.g. llama.cpp's timings.prompt_ms), and of the
// time the request spent outside it (client TTFT minus that), where every trial reports it.
inline std::optional<double> engine_ttft_median(const std::vector<const Trial*>& trials) {
    std::vector<double> out;
    for (const Trial* t : trials)
        if (t->measured.engine_ttft_ms) out.push_back(*t->measured.engine_ttft_ms);
    if (out.empty() || out.size() != trials.size()) return std::nullopt;
    return median(out);
}

inline std::optional<double> outside_engine_ms(const std::vector<const Trial*>& trials) {
    std::vector<double> out;
    for (const Trial* t : trials)
        if (t->measured.engine_ttft_ms && t->measured.stamps.first_token_ms)
            out.push_back(*t->measured.stamps.first_token_ms - *t->measured.engine_ttft_ms);
    if (out.empty() || out.size() != trials.size()) return std::nullopt;
    return median(out);
}

// A saving made mostly outside the engine's prompt work is not the prefix cache's prefill saving:
// llama-server's host prompt cache (--cache-ram) copies the slot's KV to host memory before a
// prompt that does not match the slot, so its misses wait where its hits do not. Said when misses
// spend more than 1 ms, and more than half the median saving, beyond what hits spend there
// (1 ms: well above kvgate's client timing error, tens of microseconds).
inline std::string outside_prefill_note(const PhaseResult& r) {
    const auto hit = outside_engine_ms(r.measured(Arm::hit));
    const auto miss = outside_engine_ms(r.measured(Arm::miss));
    if (!hit || !miss) return "";
    const double saving = r.miss_stats.ttft_median - r.hit_stats.ttft_median;
    const double extra = *miss - *hit;
    if (saving <= 0 || extra <= 1.0 || extra <= 0.5 * saving) return "";
    return detail::fmt("; WARNING: misses spend %.2f ms outside the engine's own prompt time (hits %.2f ms), %.0f%% "
                       "of the %.2f ms median saving: the saving is not prefill (llama-server's host prompt cache, "
                       "--cache-ram, copies the slot's KV before a prompt that does not match it)",
                       *miss, *hit, 100 * extra / saving, saving);
}

// The converse: the engine's own prompt time shows the saving, but hits spend more than misses
// outside it, so the client sees little of it. llama-server tokenizes the whole prompt before it
// looks at its cache (~2 us a token on a CPU core): on a GPU fast enough that prefill costs about
// as much a token, the hit's longer prompt gives back in tokenizing what the cache saved.
inline std::string hidden_saving_note(const PhaseResult& r, double bar) {
    if (r.settings.ttft == "engine") return "";
    const auto hit_engine = engine_ttft_median(r.measured(Arm::hit));
    const auto miss_engine = engine_ttft_median(r.measured(Arm::miss));
    const auto hit_outside = outside_engine_ms(r.measured(Arm::hit));
    const auto miss_outside = outside_engine_ms(r.measured(Arm::miss));
    if (!hit_engine || !miss_engine || !hit_outside || !miss_outside || *hit_engine <= 0) return "";
    const double saving = *miss_engine - *hit_engine;
    const double given_back = *hit_outside - *miss_outside;
    if (*miss_engine / *hit_engine < bar || given_back <= 0.5 * saving) return "";
    return detail::fmt("; the engine's own prompt time shows the saving (median hit %.2f ms, miss %.2f ms, ratio "
                       "%.2f), but hits spend %.2f ms more than misses outside it",
                       *hit_engine, *miss_engine, *miss_engine / *hit_engine, given_back) +
           detail::fmt(" (%.2f vs %.2f ms: the server's work before the prompt, e.g. tokenizing the longer hit "
                       "prompt), %.0f%% of that saving: at this scale the client sees the server's per-request work, "
                       "not the cache",
                       *hit_outside, *miss_outside, 100 * given_back / saving);
}

// Requests far outside their arm (over 3x its median TTFT), named, and where the engine reports its own
// prompt time, whose: a stall the engine's TTFT shows too is the server's; one it does not is the
// client's or the network's. Said with any timing outcome, since a stall can decide one.
inline std::string stall_note(const PhaseResult& r) {
    constexpr double factor = 3;
    std::string named;
    int count = 0;
    for (Arm arm : {Arm::hit, Arm::miss}) {
        const auto trials = r.measured(arm);
        std::vector<double> ttft;
        for (const Trial* t : trials) ttft.push_back(t->ttft_ms);
        const double arm_median = median(ttft);
        const auto engine_median = engine_ttft_median(trials);
        for (const Trial* t : trials) {
            if (!(arm_median > 0) || t->ttft_ms <= factor * arm_median) continue;
            if (++count > 3) continue;  // the first three named, all counted
            const char* whose = !t->measured.engine_ttft_ms || !engine_median ? ""
                                : *t->measured.engine_ttft_ms > factor * *engine_median
                                    ? ": the engine's own TTFT shows it, a server stall"
                                    : ": the engine's own TTFT does not, so the client or the network";
            named += (named.empty() ? "" : "; ") + detail::fmt("trial %.0f (", t->number()) + to_string(arm) +
                     detail::fmt(") %.1f ms against its arm's median %.1f ms", t->ttft_ms, arm_median) + whose;
        }
    }
    if (count == 0) return "";
    return detail::fmt("; %.0f stall(s), requests over %.0fx their arm's median TTFT: ", count, factor) + named;
}

// A fleet's placement over the run: every measured trial's warm-up and query, the hit arm's
// locality. nullopt: not a fleet. A request without a placement counts as unplaced.
inline std::optional<FleetPlacementSummary> fleet_placement(const PhaseResult& r) {
    if (!r.engine.fleet()) return std::nullopt;
    std::vector<TrialPlacement> trials;
    for (const auto& t : r.trials) {
        if (t.warmup) continue;
        TrialPlacement p;
        p.hit_arm = t.arm == Arm::hit;
        if (t.warm.placement) p.warm = *t.warm.placement;
        if (t.measured.placement) p.measured = *t.measured.placement;
        trials.push_back(p);
    }
    return summarize_placement(trials, static_cast<int>(r.engine.replica_urls.size()));
}

inline std::string router_policy_name(const EngineInfo& e) {
    return e.router_policy.empty() ? "the router's policy (not named: KVGATE_FLEET_POLICY)" : "policy " + e.router_policy;
}

// Why hits found nothing, where the server says: caching is off (its cache config, or no prefix-cache
// lookups counted while it served every prompt), else the cache simply did not serve the prefix.
inline std::string caching_off_cause(const PhaseResult& r) {
    if (!r.engine.prefix_caching) return "the server reports prefix caching off, so it cached nothing";
    if (r.counters.available && r.counters.queries <= 0)
        return "the server counted no prefix-cache lookups over the run (Prometheus prefix_cache_queries +0): "
               "prefix caching is off";
    return "the prefix cache did not serve the warmed prefix";
}

// Fills the result's arm statistics, degradation and verdict from its trials.
inline void decide(PhaseResult& r, double threshold_pct, double confidence) {
    const auto hits = r.measured(Arm::hit);
    const auto misses = r.measured(Arm::miss);
    r.hit_stats = arm_stats(hits);
    r.miss_stats = arm_stats(misses);
    r.ttft_degradation_pct = r.hit_stats.ttft_mean > 0
                                 ? (r.miss_stats.ttft_mean - r.hit_stats.ttft_mean) / r.hit_stats.ttft_mean * 100
                                 : std::numeric_limits<double>::quiet_NaN();

    Verdict& v = r.verdict;
    v = Verdict{};
    v.threshold_pct = threshold_pct;
    v.confidence = confidence;
    v.method =
        "Student's t interval on ln(miss/hit) over paired trials (ABBA order), mapped back with exp: a confidence "
        "interval for the geometric mean of the paired miss/hit TTFT ratios";
    if (r.settings.ttft == "engine")
        v.method += "; TTFT is the engine's own prompt time (KVGATE_TTFT=engine), not the client's first token";

    // Pairs: the k-th measured hit with the k-th measured miss (the schedule runs them side by side).
    std::vector<double> hit_ttft, miss_ttft;
    for (std::size_t i = 0; i < std::min(hits.size(), misses.size()); ++i) {
        hit_ttft.push_back(hits[i]->ttft_ms);
        miss_ttft.push_back(misses[i]->ttft_ms);
    }
    const RatioInterval ci = paired_ratio_interval(hit_ttft, miss_ttft, confidence);
    v.ratio = ci.ratio;
    v.ratio_low = ci.low;
    v.ratio_high = ci.high;

    // Evidence: the server's cached-token counts, per trial, against what the template and the
    // block size explain (evidence.hpp).
    const int block = r.engine.block_size;
    const TemplateShape& shape = r.engine.template_shape;
    const bool full_hit_rule = hit_rule_known(block, shape);
    const int around = std::max(shape.prefix_tokens, 0) + std::max(shape.suffix_tokens, 0);
    auto rendered = [&](int reported, int content) { return reported >= 0 ? reported : content + around; };
    std::vector<int> warm_cached;  // every trial's, warm-ups too, in run order
    for (const Trial& t : r.trials) warm_cached.push_back(t.warm.usage.cached_tokens);
    const int warm_least = shape.known() ? -1 : least_warm_cached(warm_cached);
    int hit_reported = 0, hit_short = 0, miss_reported = 0, miss_cached = 0;
    int hit_need = 0, hit_fewest = std::numeric_limits<int>::max(), miss_allowed = 0, miss_most = 0;
    for (const Trial* t : hits)
        if (t->measured.usage.cached_tokens >= 0) {
            ++hit_reported;
            const int measured = rendered(t->measured.usage.prompt_tokens, t->prompt_tokens_expected);
            const int need =
                full_hit_rule
                    ? std::max(1, expected_hit_cached_tokens(rendered(t->warm.usage.prompt_tokens,
                                                                      t->warm_prompt_tokens_expected),
                                                             measured, block, shape))
                    : miss_cached_tokens_allowed(measured, block, shape, warm_least) + 1;  // more than a miss may
            if (t->measured.usage.cached_tokens < need) {
                ++hit_short;
                hit_need = std::max(hit_need, need);
                hit_fewest = std::min(hit_fewest, t->measured.usage.cached_tokens);
            }
        }
    // An engine that reuses shifted chunks (llama.cpp's n_cache_reuse) may serve B from the warmed
    // [A,B] to a miss: that is its mechanism at work, not a contaminated miss.
    const int shift = r.engine.shifted_chunk_reuse;
    std::vector<double> shifted_cached, shifted_prompt;
    for (const Trial* t : misses)
        if (t->measured.usage.cached_tokens >= 0) {
            ++miss_reported;
            const int allowed =
                miss_cached_tokens_allowed(rendered(t->measured.usage.prompt_tokens, t->prompt_tokens_expected), block,
                                           shape, warm_least);
            if (t->measured.usage.cached_tokens <= allowed) continue;
            if (shift > 0) {
                shifted_cached.push_back(t->measured.usage.cached_tokens);
                shifted_prompt.push_back(t->measured.usage.prompt_tokens >= 0 ? t->measured.usage.prompt_tokens
                                                                              : t->prompt_tokens_expected);
            } else {
                ++miss_cached;
                miss_allowed = allowed;
                miss_most = std::max(miss_most, t->measured.usage.cached_tokens);
            }
        }
    const bool per_request = hit_reported > 0 && miss_reported > 0;
    const bool counters = r.counters.available;
    v.evidence = per_request && counters ? "cached tokens per request and Prometheus counters"
                 : per_request            ? "cached tokens per request"
                 : counters               ? "Prometheus counters only"
                 : r.counters.unavailable_because.empty() ? "timing only: the server reported no cache evidence"
                                                          : "timing only: " + r.counters.unavailable_because;
    if (per_request && !r.counters.unavailable_because.empty()) v.evidence += "; " + r.counters.unavailable_because;
    if (per_request) {
        const std::string tmpl = shape.known() ? "template prefix " + std::to_string(shape.prefix_tokens) +
                                                     " and suffix " + std::to_string(shape.suffix_tokens) + " tokens"
                                               : "template unknown";
        const std::string blk = block > 0 ? "block size " + std::to_string(block) : "block size unknown";
        v.evidence += full_hit_rule ? "; a hit must reuse the warm prompt's whole blocks, a miss at most the "
                                      "template's (" + blk + ", " + tmpl + ")"
                                    : "; a hit must reuse more than a miss may (" + blk + ", " + tmpl +
                                          ": the whole-block rule needs both)";
        if (warm_least >= 0)
            v.evidence += "; the template's cached share as the warm requests of fresh content found it: " +
                          std::to_string(warm_least) + " tokens";
    }
    // What the shifted reuse did to the saving, said with every outcome the timing gives.
    std::string shifted_note;
    if (!shifted_cached.empty()) {
        v.evidence += detail::fmt("; shifted-chunk reuse (--cache-reuse %.0f) in %.0f of %.0f misses", shift,
                                  static_cast<double>(shifted_cached.size()), miss_reported);
        shifted_note = detail::fmt("shifted-chunk reuse (--cache-reuse %.0f): %.0f of %.0f miss-arm requests reused "
                                   "a median of %.0f",
                                   shift, static_cast<double>(shifted_cached.size()), miss_reported,
                                   median(shifted_cached)) +
                       detail::fmt(" of %.0f prompt tokens (B, shifted out of the warmed [A,B]), so a miss recomputed "
                                   "only the rest: the ratio is the saving of keeping A on this engine with chunk "
                                   "reuse on, smaller than against a miss that recomputes [B,Q]; ",
                                   median(shifted_prompt));
    }

    const double bar = threshold_ratio(threshold_pct);
    const std::string interval =
        detail::fmt("miss/hit TTFT ratio %.3f, %.0f%% interval [%.3f, %.3f]", ci.ratio, confidence * 100, ci.low,
                    ci.high) +
        detail::fmt(" over %.0f pairs; threshold %.3f (%.1f%% degradation)", ci.n, bar, threshold_pct);

    if (r.fault) {
        v.outcome = Outcome::error;
        v.reason = "the run stopped at a fault (" + std::string(to_string(r.fault->kind)) + "): " + r.fault->message;
        v.fix = "fix the cause above and re-run; the trials completed before the fault are kept in the report";
        return;
    }
    // A fleet: where the requests went decides before timing can. A hit-arm query away from its
    // warm-up's replica cannot find the warmed prefix, whatever the cache does.
    if (const auto fleet = fleet_placement(r)) {
        const std::string routing = " (" + router_policy_name(r.engine) + ", " +
                                    std::to_string(fleet->replicas) + " replicas; " + fleet->reuse_line() + ")";
        if (fleet->check() == FleetPlacementCheck::moved) {
            v.outcome = Outcome::fail;
            v.reason = fleet->message() + ": the routing broke cache locality" + routing;
            v.fix = "route by prefix (vllm-router --policy cache_aware) or keep a conversation on one replica "
                    "(session affinity)";
            return;
        }
        if (fleet->check() == FleetPlacementCheck::unplaced) {
            v.outcome = Outcome::unverified;
            v.reason = fleet->message() + routing;
            v.fix = "every replica's /metrics must be readable (KVGATE_FLEET_REPLICA_URLS) and nothing else may send "
                    "requests to the replicas during the run";
            return;
        }
    }
    if (ci.dropped > 0) {
        v.outcome = Outcome::error;
        v.reason = std::to_string(ci.dropped) + " of " + std::to_string(ci.n + ci.dropped) +
                   " trial pairs have a TTFT that is not a positive number (zero, negative or NaN) and were left "
                   "out of the interval: the measurement is defective";
        v.fix = "look at those trials' stamps in the results file; a TTFT must be a positive time";
        return;
    }
    if (ci.n < 2) {
        v.outcome = Outcome::error;
        v.reason = "fewer than two complete trial pairs";
        v.fix = "run at least 2 trials per arm (--trials)";
        return;
    }
    if (miss_cached > 0) {
        v.outcome = Outcome::unverified;
        v.reason = std::to_string(miss_cached) + " of " + std::to_string(miss_reported) +
                   " miss-arm requests were served from cache (up to " + std::to_string(miss_most) +
                   " cached tokens; the template explains " + std::to_string(miss_allowed) +
                   "): the experiment did not measure a miss";
        v.fix = "make sure nothing else sends this content (a fresh --seed), and that the server's cache is not "
                "shared with another run";
        return;
    }
    // Per request, against the ids the server rendered: a hit that reused only part of its warm prompt.
    if (const auto shortfall = reuse_shortfall(r)) {
        v.outcome = Outcome::fail;
        v.reason = shortfall->reason + " (" + interval + ")";
        v.fix = shortfall->fix;
        return;
    }
    if (hit_short > 0) {
        v.outcome = Outcome::fail;
        v.reason = std::to_string(hit_short) + " of " + std::to_string(hit_reported) +
                   " hit-arm requests reused too little (fewest " + std::to_string(hit_fewest) +
                   " cached tokens, " + (full_hit_rule ? "the warm prompt's whole blocks are " : "at least ") +
                   std::to_string(hit_need) + "): " + caching_off_cause(r) + " (" + interval + ")";
        if (!r.engine.prefix_caching || (r.counters.available && r.counters.queries <= 0))
            v.fix = "turn prefix caching on in the server (vLLM: it is on by default; drop --no-enable-prefix-caching; "
                    "llama.cpp: requests with cache_prompt true)";
        return;
    }
    if (!per_request && counters && r.counters.hits <= 0) {
        v.outcome = Outcome::fail;
        v.reason = "the Prometheus prefix-cache hit counter did not grow during the run: the cache served nothing (" +
                   interval + ")";
        return;
    }
    if (ci.log_stdev == 0) {  // identical ratios: a zero-width interval, which no real timing gives
        v.outcome = Outcome::indeterminate;
        v.reason = "every paired ratio is the same, so the interval has zero width, which is no evidence: " + interval;
        v.fix = "real timings vary; check that the stamps are real clock readings, and run more trials (--trials)";
        return;
    }
    // Strictly: a ratio on the bar (at threshold 0: a miss no slower than a hit) saves nothing.
    if (ci.low > bar) {
        v.outcome = Outcome::pass;
        v.reason = shifted_note + "the interval's lower bound clears the threshold: " + interval;
    } else if (ci.high < bar) {
        v.outcome = Outcome::fail;
        v.reason = shifted_note + "the interval's upper bound is below the threshold: " + interval;
    } else {
        v.outcome = Outcome::indeterminate;
        v.reason = shifted_note + "the interval straddles the threshold: " + interval;
        // Trials needed for the half-width to fit between the estimate and the bar: n * (half / gap)^2.
        const double half = std::log(ci.high) - ci.log_mean;
        const double gap = std::fabs(ci.log_mean - std::log(bar));
        if (gap > 1e-9) {
            const double needed = std::ceil(ci.n * (half / gap) * (half / gap));
            v.fix = detail::fmt("more trials: about %.0f pairs (--trials %.0f) would separate the interval from the "
                                "threshold at this spread",
                                needed, needed);
        } else {
            v.fix = "the ratio sits on the threshold";
        }
        if (ci.ratio < bar)
            v.fix += "; a longer context A (--context-a-tokens) makes a miss cost more and the effect larger";
    }
    if (v.outcome != Outcome::pass) {
        const std::string hidden = hidden_saving_note(r, bar);
        if (!hidden.empty()) {
            v.reason += hidden;
            v.fix = (v.fix.empty() ? "" : v.fix + "; or ") +
                    "gate on the engine's own prompt time (--ttft engine), which leaves the server's per-request work "
                    "out, or measure a model whose prefill outweighs it";
        }
    }
    v.reason += stall_note(r);
    const std::string outside = outside_prefill_note(r);
    if (!outside.empty()) {
        v.reason += outside;
        if (v.fix.empty())
            v.fix = "measure the engine as it serves prefill alone (llama-server --cache-ram 0, kvgate's llama.cpp "
                    "fixture's default), or read the saving as cache management, not prefill";
    }
}

}  // namespace kvgate
