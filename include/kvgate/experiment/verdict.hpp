// From measured trials to per-arm statistics and a verdict: pass / fail / indeterminate /
// unverified / error, with the reason in numbers and, when the numbers cannot decide, the fix.
//
// The rules, in order, each one function below (the first that applies decides):
//   1. fault_rule: a fault stopped the run: error
//   2. routing_rule: a fleet's routing moved hits off their warm replica: fail; requests unplaced: unverified
//   3. measurement_rule: a TTFT that is no positive number: error
//   4. contamination_rule: a miss or cold request served from cache beyond what the template explains: unverified
//   5. hit_reuse_rule: hits reused less than their warm prompt's whole blocks: fail, naming the divergence
//      (template) or the server (eviction), or that nothing was cached (caching off, where the server says so)
//   6. rounds_rule: fewer than two rounds: error, identical ratios: indeterminate; else timing_ruling: two
//      paired contrasts against the bar, each decided sequentially (sequential.hpp): the cache's own saving,
//      cold/hit (same length, only the cache differs), and the seed's invalidation cost, miss/hit. Both
//      must clear the bar; either below it fails; otherwise indeterminate.
// Notes follow a timing decision only (add_timing_notes): stalls, block rounding, a saving made outside
// the engine, and the costs per token the three arms imply (physics.hpp) with the sizes that would decide.
// tests/data/verdicts_golden.json pins the verdicts of recorded runs and variants that reach each rule.
#pragma once

#include <cmath>
#include <cstdio>
#include <optional>
#include <limits>
#include <string>
#include <vector>

#include "kvgate/engine/advice.hpp"
#include "kvgate/engine/evidence.hpp"
#include "kvgate/experiment/reuse_check.hpp"
#include "kvgate/model/format.hpp"
#include "kvgate/model/placement.hpp"
#include "kvgate/model/records.hpp"
#include "kvgate/stats/physics.hpp"
#include "kvgate/stats/sequential.hpp"
#include "kvgate/stats/stats.hpp"

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

// The engine's words (EngineAdvice, from its dialect) where it has them, else the neutral ones.
inline std::string advice_or(const std::string& engine_words, const char* neutral) {
    return engine_words.empty() ? neutral : engine_words;
}

// A saving made mostly outside the engine's prompt work is not the prefix cache's prefill saving
// (llama-server's host prompt cache, for one, copies the slot's KV to host memory before a prompt
// that does not match the slot, so its misses wait where its hits do not). Said when misses
// spend more than 1 ms, and more than half the median saving, beyond what hits spend there
// (1 ms: well above kvgate's client timing error, tens of microseconds).
inline std::string outside_prefill_note(const PhaseResult& r) {
    const auto hit = outside_engine_ms(r.measured(Arm::hit));
    const auto miss = outside_engine_ms(r.measured(Arm::miss));
    if (!hit || !miss) return "";
    const double saving = r.miss_stats.ttft_median - r.hit_stats.ttft_median;
    const double extra = *miss - *hit;
    if (saving <= 0 || extra <= 1.0 || extra <= 0.5 * saving) return "";
    const std::string cause = engine_advice(r.phase.engine).miss_waits_cause;
    return detail::fmt("; WARNING: misses spend %.2f ms outside the engine's own prompt time (hits %.2f ms), %.0f%% "
                       "of the %.2f ms median saving: the saving is not prefill",
                       *miss, *hit, 100 * extra / saving, saving) +
           (cause.empty() ? "" : " (" + cause + ")");
}

// The converse: the engine's own prompt time shows the saving, but hits spend more than misses
// outside it, so the client sees little of it. llama-server tokenizes the whole prompt before it
// looks at its cache (~2 us a token on a CPU core): on a GPU fast enough that prefill costs about
// as much a token, the hit's longer prompt gives back in tokenizing what the cache saved.
inline std::string hidden_saving_note(const PhaseResult& r, double bar) {
    if (r.settings.gate.ttft == TtftSource::engine) return "";
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
    for (Arm arm : all_arms) {
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
// lookups counted while it served every prompt); caching on and lookups counted, so the warmed blocks
// were gone by the query (evicted, or never stored); else, without counters, the cache did not serve.
inline bool server_caching_off(const PhaseResult& r) {
    return !r.engine.prefix_caching || (r.counters.available && r.counters.queries <= 0);
}

inline std::string caching_off_cause(const PhaseResult& r) {
    if (!r.engine.prefix_caching) return "the server reports prefix caching off, so it cached nothing";
    if (r.counters.available && r.counters.queries <= 0)
        return "the server counted no prefix-cache lookups over the run (Prometheus prefix_cache_queries +0): "
               "prefix caching is off";
    if (r.counters.available)
        return detail::fmt("prefix caching is on and the server looked up %.0f prompt tokens (hits +%.0f), yet the "
                           "hits found their warm prompt's blocks gone: evicted between the warm request and the "
                           "query (a KV cache too small for the traffic beside this run), or never stored",
                           r.counters.queries, r.counters.hits);
    return "the prefix cache did not serve the warmed prefix";
}

inline std::string caching_off_fix(const PhaseResult& r) {
    const EngineAdvice advice = engine_advice(r.phase.engine);
    if (server_caching_off(r)) return advice_or(advice.turn_caching_on, "turn prefix caching on in the server");
    return advice_or(advice.make_room, "give the KV cache room for the warmed prefix beside the other traffic, or run "
                                       "the gate where no other requests share the server");
}

// The rounds' pairs of one arm against the hit arm: the k-th measured trial of each (a round runs one of each).
inline void paired_ttft(const PhaseResult& r, Arm other, std::vector<double>& hit, std::vector<double>& against) {
    const auto hits = r.measured(Arm::hit);
    const auto others = r.measured(other);
    hit.clear();
    against.clear();
    for (std::size_t i = 0; i < std::min(hits.size(), others.size()); ++i) {
        hit.push_back(hits[i]->ttft_ms);
        against.push_back(others[i]->ttft_ms);
    }
}

inline SequentialPlan sequential_plan(const Settings& s, double confidence) {
    return SequentialPlan{s.hit_miss.trials, std::max(s.hit_miss.trials, s.hit_miss.max_trials), confidence};
}

inline Contrast contrast_of(const RatioInterval& ci, double bar, double look) {
    Contrast c;
    c.ratio = ci.ratio;
    c.low = ci.low;
    c.high = ci.high;
    c.pairs = ci.n;
    c.look_confidence = look;
    const Side side = side_of(ci, bar);
    c.outcome = ci.n < 2 ? Outcome::error
                : side == Side::above ? Outcome::pass
                : side == Side::below ? Outcome::fail
                                      : Outcome::indeterminate;
    return c;
}

inline std::string contrast_line(const char* what, const Contrast& c) {
    if (c.pairs < 2) return std::string(what) + detail::fmt(": no interval from %.0f pair(s)", c.pairs);
    return std::string(what) + detail::fmt(" %.3f, %.2f%% interval [%.3f, %.3f]", c.ratio, c.look_confidence * 100,
                                           c.low, c.high) +
           detail::fmt(" over %.0f pairs", c.pairs);
}

// The arms' medians as costs (physics.hpp), where every arm has them and the hit arm's reuse is known.
inline std::optional<CostModel> run_cost_model(const PhaseResult& r) {
    const ArmStats &h = r.hit_stats, &m = r.miss_stats, &c = r.cold_stats;
    if (h.n == 0 || m.n == 0 || c.n == 0) return std::nullopt;
    double hit_cached = h.cached_tokens_median;
    if (hit_cached < 0) {  // no server count: what the hits were expected to reuse
        std::vector<double> expected;
        for (const Trial* t : r.measured(Arm::hit))
            if (t->reuse.checked) expected.push_back(t->reuse.expected);
        if (expected.empty()) return std::nullopt;
        hit_cached = median(expected);
    }
    const auto recomputed = [](const ArmStats& s, double cached) { return s.prompt_tokens - std::max(0.0, cached); };
    const TemplateShape& shape = r.engine.template_shape;
    const double around = shape.known() ? shape.prefix_tokens + shape.suffix_tokens : 0;
    return fit_cost_model(ArmCost{h.ttft_median, double(h.prompt_tokens), recomputed(h, hit_cached)},
                          ArmCost{m.ttft_median, double(m.prompt_tokens), recomputed(m, m.cached_tokens_median)},
                          ArmCost{c.ttft_median, double(c.prompt_tokens), recomputed(c, c.cached_tokens_median)}, around);
}

// The costs per token, and where a contrast did not clear the bar, the sizes that would: the predicted
// ratio must clear the bar by the margin this run's spread asks at the first look.
inline std::string physics_note(const PhaseResult& r, const CostModel& m, double bar, const SequentialPlan& plan,
                                const RatioInterval& inv, const RatioInterval& cache) {
    const Settings& s = r.settings;
    std::string out = detail::fmt("the cache saves %.1f us per cached token on this engine (cold - hit over the "
                                  "tokens the hit reused); the server spends %.1f us on every prompt token, cached or "
                                  "not, and %.1f ms per request",
                                  1000 * m.per_recomputed_token_ms, 1000 * m.per_prompt_token_ms, m.fixed_ms);
    const auto target = [&](const RatioInterval& ci) {
        const double t = student_t_quantile(0.5 + look_confidence(plan, plan.first_look) / 2,
                                            std::max(1, plan.first_look - 1));
        return bar * std::exp(t * std::max(ci.log_stdev, 0.05) / std::sqrt(double(plan.first_look)));
    };
    const double a = s.hit_miss.context_a_tokens, b = s.hit_miss.context_b_tokens, q = s.hit_miss.query_tokens;
    if (cache.n >= 2 && side_of(cache, bar) != Side::above) {
        const auto need = a_for_cache(m, b, q, target(cache));
        out += need ? detail::fmt("; cold/hit would clear the bar at A = %.0f tokens (B = %.0f, Q = %.0f)", *need, b, q)
                    : "; no context A makes cold/hit clear the bar: per token the server's front end costs about as "
                      "much as the prefill the cache saves";
    }
    if (inv.n >= 2 && side_of(inv, bar) != Side::above) {
        const auto need = b_for_invalidation(m, a, q, target(inv));
        out += need ? detail::fmt("; removing A shows (miss/hit clears the bar) from B = %.0f tokens (A = %.0f, Q = "
                                  "%.0f): a miss then recomputes enough to outweigh the hit's longer prompt",
                                  *need, a, q)
                    : "; no context B makes miss/hit clear the bar at this A: the hit's longer prompt costs the server "
                      "more per token than a miss's recompute adds";
    }
    return out;
}

namespace verdict_detail {

// What the rules read, gathered once from the run: the two contrasts, and the server's cached-token
// counts per trial against what the template and the block size explain (evidence.hpp).
struct RunFacts {
    const PhaseResult* run = nullptr;
    SequentialPlan plan;
    double threshold_pct = 0, bar = 1;
    RatioInterval inv, cache;  // miss/hit, cold/hit
    bool cold_measured = false;
    bool full_hit_rule = false, per_request = false;
    int hit_reported = 0, hit_short = 0, hit_need = 0, hit_fewest = std::numeric_limits<int>::max();
    int other_reported = 0, other_cached = 0, other_allowed = 0, other_most = 0;
    Arm contaminated = Arm::miss;
    std::string interval;      // both contrasts against the bar, in words
    std::string shifted_note;  // what shifted-chunk reuse did to the saving, said with every timing outcome
};

// A rule's decision; `notes` says whether the notes on the timing (stalls, block rounding, costs per
// token, a saving outside the engine) follow it.
struct Ruling {
    Outcome outcome = Outcome::error;
    std::string reason, fix;
    bool notes = false;
};

// Fills `f` and the verdict's method, contrasts and evidence line.
inline RunFacts gather_facts(const PhaseResult& r, Verdict& v, double threshold_pct, double confidence) {
    RunFacts f;
    f.run = &r;
    f.threshold_pct = threshold_pct;
    f.plan = sequential_plan(r.settings, confidence);
    v.method =
        "sign-test interval on the median of the paired other/hit TTFT ratios over the rounds (one trial of each "
        "arm per round, orders balanced by a Williams design); looked at after every round from --trials to "
        "--max-trials, alpha spent by Bonferroni (half at the first look, the rest over the later ones growing with the "
        "square of the rounds added), so "
        "every look's interval is valid together";
    if (r.settings.gate.ttft == TtftSource::engine)
        v.method += "; TTFT is the engine's own prompt time (KVGATE_TTFT=engine), not the client's first token";

    std::vector<double> hit_ttft, other_ttft;
    paired_ttft(r, Arm::miss, hit_ttft, other_ttft);
    f.inv = sequential_interval(hit_ttft, other_ttft, f.plan);
    f.cold_measured = !r.measured(Arm::cold).empty();
    paired_ttft(r, Arm::cold, hit_ttft, other_ttft);
    f.cache = sequential_interval(hit_ttft, other_ttft, f.plan);
    f.bar = threshold_ratio(threshold_pct);
    v.invalidation = contrast_of(f.inv, f.bar, look_confidence(f.plan, f.inv.n));
    v.cache = contrast_of(f.cache, f.bar, look_confidence(f.plan, f.cache.n));
    v.ratio = f.inv.ratio;
    v.ratio_low = f.inv.low;
    v.ratio_high = f.inv.high;
    v.rounds = std::max(f.inv.n + f.inv.dropped, f.cache.n + f.cache.dropped);

    const int block = r.engine.block_size;
    const TemplateShape& shape = r.engine.template_shape;
    f.full_hit_rule = hit_rule_known(block, shape);
    const int around = std::max(shape.prefix_tokens, 0) + std::max(shape.suffix_tokens, 0);
    auto rendered = [&](int reported, int content) { return reported >= 0 ? reported : content + around; };
    std::vector<int> warm_cached;  // every trial's, warm-ups too, in run order
    for (const Trial& t : r.trials) warm_cached.push_back(t.warm.usage.cached_tokens);
    const int warm_least = shape.known() ? -1 : least_warm_cached(warm_cached);
    for (const Trial* t : r.measured(Arm::hit))
        if (t->measured.usage.cached_tokens >= 0) {
            ++f.hit_reported;
            const int measured = rendered(t->measured.usage.prompt_tokens, t->prompt_tokens_expected);
            const int need =
                f.full_hit_rule
                    ? std::max(1, expected_hit_cached_tokens(rendered(t->warm.usage.prompt_tokens,
                                                                      t->warm_prompt_tokens_expected),
                                                             measured, block, shape))
                    : miss_cached_tokens_allowed(measured, block, shape, warm_least) + 1;  // more than a miss may
            if (t->measured.usage.cached_tokens < need) {
                ++f.hit_short;
                f.hit_need = std::max(f.hit_need, need);
                f.hit_fewest = std::min(f.hit_fewest, t->measured.usage.cached_tokens);
            }
        }
    // Miss and cold requests may reuse what the template explains. An engine that reuses shifted chunks
    // (llama.cpp's n_cache_reuse) may serve B from the warmed [A,B]: its mechanism at work, not contamination.
    const int shift = r.engine.shifted_chunk_reuse;
    std::vector<double> shifted_cached, shifted_prompt;
    for (Arm arm : {Arm::miss, Arm::cold})
        for (const Trial* t : r.measured(arm))
            if (t->measured.usage.cached_tokens >= 0) {
                ++f.other_reported;
                const int allowed = miss_cached_tokens_allowed(
                    rendered(t->measured.usage.prompt_tokens, t->prompt_tokens_expected), block, shape, warm_least);
                if (t->measured.usage.cached_tokens <= allowed) continue;
                if (shift > 0) {
                    shifted_cached.push_back(t->measured.usage.cached_tokens);
                    shifted_prompt.push_back(t->measured.usage.prompt_tokens >= 0 ? t->measured.usage.prompt_tokens
                                                                                  : t->prompt_tokens_expected);
                } else {
                    if (f.other_cached++ == 0) f.contaminated = arm;
                    f.other_allowed = allowed;
                    f.other_most = std::max(f.other_most, t->measured.usage.cached_tokens);
                }
            }
    f.per_request = f.hit_reported > 0 && f.other_reported > 0;
    const bool counters = r.counters.available;
    v.evidence = f.per_request && counters ? "cached tokens per request and Prometheus counters"
                 : f.per_request           ? "cached tokens per request"
                 : counters                ? "Prometheus counters only"
                 : r.counters.unavailable_because.empty() ? "timing only: the server reported no cache evidence"
                                                          : "timing only: " + r.counters.unavailable_because;
    if (f.per_request && !r.counters.unavailable_because.empty()) v.evidence += "; " + r.counters.unavailable_because;
    if (f.per_request) {
        const std::string tmpl = shape.known() ? "template prefix " + std::to_string(shape.prefix_tokens) +
                                                     " and suffix " + std::to_string(shape.suffix_tokens) + " tokens"
                                               : "template unknown";
        const std::string blk = block > 0 ? "block size " + std::to_string(block) : "block size unknown";
        v.evidence += f.full_hit_rule ? "; a hit must reuse the warm prompt's whole blocks, a miss or cold request at "
                                        "most the template's (" + blk + ", " + tmpl + ")"
                                      : "; a hit must reuse more than a miss or cold request may (" + blk + ", " + tmpl +
                                            ": the whole-block rule needs both)";
        if (warm_least >= 0)
            v.evidence += "; the template's cached share as the warm requests of fresh content found it: " +
                          std::to_string(warm_least) + " tokens";
    }
    if (!shifted_cached.empty()) {
        const std::string chunk = "shifted-chunk reuse (" +
                                  advice_or(engine_advice(r.phase.engine).chunk_reuse_flag, "least chunk") + " " +
                                  std::to_string(shift) + ")";
        v.evidence += "; " + chunk + detail::fmt(" in %.0f of %.0f miss and cold requests",
                                                 static_cast<double>(shifted_cached.size()), f.other_reported);
        f.shifted_note = chunk + detail::fmt(": %.0f of %.0f miss and cold requests reused a median of %.0f",
                                             static_cast<double>(shifted_cached.size()), f.other_reported,
                                             median(shifted_cached)) +
                         detail::fmt(" of %.0f prompt tokens (B, shifted out of the warmed [A,B]), so they recomputed "
                                     "only the rest: the ratios are the saving of keeping A on this engine with chunk "
                                     "reuse on, smaller than against requests that recompute B; ",
                                     median(shifted_prompt));
    }
    f.interval = f.cold_measured
                     ? contrast_line("cold/hit TTFT ratio (the cache's saving)", v.cache) + "; " +
                           contrast_line("miss/hit (the seed's invalidation cost)", v.invalidation) +
                           detail::fmt("; threshold %.3f (%.1f%% degradation)", f.bar, threshold_pct)
                     : contrast_line("miss/hit TTFT ratio", v.invalidation) +
                           detail::fmt("; threshold %.3f (%.1f%% degradation); no cold arm measured", f.bar,
                                       threshold_pct);
    return f;
}

// Rule 1: a fault.
inline std::optional<Ruling> fault_rule(const RunFacts& f) {
    const auto& fault = f.run->fault;
    if (!fault) return std::nullopt;
    return Ruling{Outcome::error,
                  "the run stopped at a fault (" + std::string(to_string(fault->kind)) + "): " + fault->message,
                  f.run->trials.empty()
                      ? "fix the cause above and re-run (no trial had run)"
                      : "fix the cause above and re-run; the trials completed before the fault are kept in the report"};
}

// Rule 2: a fleet's routing. A hit-arm query away from its warm-up's replica cannot find the warmed
// prefix, whatever the cache does.
inline std::optional<Ruling> routing_rule(const RunFacts& f) {
    const auto fleet = fleet_placement(*f.run);
    if (!fleet) return std::nullopt;
    const std::string routing = " (" + router_policy_name(f.run->engine) + ", " + std::to_string(fleet->replicas) +
                                " replicas; " + fleet->reuse_line() + ")";
    if (fleet->check() == FleetPlacementCheck::moved)
        return Ruling{Outcome::fail, fleet->message() + ": the routing broke cache locality" + routing,
                      advice_or(engine_advice(f.run->phase.engine).route_by_prefix,
                                "route by prefix or keep a conversation on one replica (session affinity)")};
    if (fleet->check() == FleetPlacementCheck::unplaced)
        return Ruling{Outcome::unverified, fleet->message() + routing,
                      "every replica's /metrics must be readable (KVGATE_FLEET_REPLICA_URLS) and nothing else may send "
                      "requests to the replicas during the run"};
    return std::nullopt;
}

// Rule 3: the measurement itself.
inline std::optional<Ruling> measurement_rule(const RunFacts& f) {
    if (f.inv.dropped <= 0 && f.cache.dropped <= 0) return std::nullopt;
    const int rounds = std::max(f.inv.n + f.inv.dropped, f.cache.n + f.cache.dropped);
    return Ruling{Outcome::error,
                  std::to_string(std::max(f.inv.dropped, f.cache.dropped)) + " of " + std::to_string(rounds) +
                      " rounds have a TTFT that is not a positive number (zero, negative or NaN) and were left "
                      "out of the interval: the measurement is defective",
                  "look at those trials' stamps in the results file; a TTFT must be a positive time"};
}

// Rule 4: the arms were what they claim.
inline std::optional<Ruling> contamination_rule(const RunFacts& f) {
    if (f.other_cached <= 0) return std::nullopt;
    return Ruling{Outcome::unverified,
                  std::to_string(f.other_cached) + " of " + std::to_string(f.other_reported) +
                      " miss and cold requests were served from cache (the first a " + arm_word(f.contaminated) +
                      "; up to " + std::to_string(f.other_most) + " cached tokens; the template explains " +
                      std::to_string(f.other_allowed) + "): the experiment did not measure a recompute",
                  "make sure nothing else sends this content (a fresh --seed), and that the server's cache is not "
                  "shared with another run"};
}

// Rule 5: the hits reused their warm prompt. Per request, against the ids the server rendered: a
// divergence (template) or the server (eviction) named; else by the counts.
inline std::optional<Ruling> hit_reuse_rule(const RunFacts& f) {
    const PhaseResult& r = *f.run;
    if (const auto shortfall = reuse_shortfall(r))
        return Ruling{Outcome::fail, shortfall->reason + " (" + f.interval + ")", shortfall->fix};
    if (f.hit_short > 0)
        return Ruling{Outcome::fail,
                      std::to_string(f.hit_short) + " of " + std::to_string(f.hit_reported) +
                          " hit-arm requests reused too little (fewest " + std::to_string(f.hit_fewest) +
                          " cached tokens, " + (f.full_hit_rule ? "the warm prompt's whole blocks are " : "at least ") +
                          std::to_string(f.hit_need) + "): " + caching_off_cause(r) + " (" + f.interval + ")",
                      caching_off_fix(r)};
    if (!f.per_request && r.counters.available && r.counters.hits <= 0)
        return Ruling{Outcome::fail,
                      "the Prometheus prefix-cache hit counter did not grow during the run: " + caching_off_cause(r) +
                          " (" + f.interval + ")",
                      caching_off_fix(r)};
    return std::nullopt;
}

// Rule 6a: timing needs two rounds (the evidence above decides on one) and real spread.
inline std::optional<Ruling> rounds_rule(const RunFacts& f) {
    if (f.inv.n < 2 || (f.cold_measured && f.cache.n < 2))
        return Ruling{Outcome::error, "fewer than two complete rounds", "run at least 2 trials per arm (--trials)"};
    if (f.inv.log_stdev == 0 || (f.cold_measured && f.cache.log_stdev == 0))  // a zero-width interval: no real timing
        return Ruling{Outcome::indeterminate,
                      "every paired ratio is the same, so the interval has zero width, which is no evidence: " +
                          f.interval,
                      "real timings vary; check that the stamps are real clock readings, and run more trials (--trials)"};
    return std::nullopt;
}

using Rule = std::optional<Ruling> (*)(const RunFacts&);

// The rules before timing, in the order of the list at the top of this header: the first that
// applies decides, and no timing note follows it.
inline constexpr Rule rules_before_timing[] = {fault_rule,         routing_rule,   measurement_rule,
                                               contamination_rule, hit_reuse_rule, rounds_rule};

// Rule 6b: the two contrasts against the bar. Both must clear it; either below it fails.
inline Ruling timing_ruling(const RunFacts& f, const Verdict& v) {
    Ruling out;
    out.notes = true;
    const Outcome c = f.cold_measured ? v.cache.outcome : Outcome::pass, i = v.invalidation.outcome;
    out.outcome = (c == Outcome::fail || i == Outcome::fail)  ? Outcome::fail
                  : (c == Outcome::pass && i == Outcome::pass) ? Outcome::pass
                                                               : Outcome::indeterminate;
    const auto said = [](Outcome o) {
        return o == Outcome::pass ? "clears the bar" : o == Outcome::fail ? "is below the bar" : "straddles the bar";
    };
    if (f.cold_measured)
        out.reason = f.shifted_note + "the cache's saving (cold/hit) " + said(c) + " and the seed's invalidation cost "
                     "(miss/hit) " + said(i) + ": " + f.interval;
    else
        out.reason = f.shifted_note + "the interval " + said(i) + ": " + f.interval;
    if (f.cold_measured && c == Outcome::pass && i != Outcome::pass)
        out.reason += "; the cache works, and removing A costs little at these sizes: [B,Q] prefills about as fast as "
                      "the hit, which recomputes only Q but carries A's tokens through the server";
    if (f.cold_measured && c == Outcome::fail && i == Outcome::pass)
        out.reason += "; the hit is faster than the shorter miss, yet an equal-length prompt with nothing cached is "
                      "not slower by the bar: the saving the miss shows is mostly its shorter prompt";
    if (out.outcome == Outcome::indeterminate) {
        int needed = 0;
        for (const auto* ci : {&f.inv, &f.cache})
            if (ci->n >= 2 && side_of(*ci, f.bar) == Side::straddles)
                needed = std::max(needed, rounds_to_separate(*ci, f.bar, f.plan));
        const int least = rounds_to_decide(look_confidence(f.plan, f.plan.first_look));
        if (f.inv.n < least)
            out.fix = detail::fmt("the sign test needs at least %.0f rounds to decide at %.2f%% (--trials %.0f)", least,
                                  100 * look_confidence(f.plan, f.plan.first_look), least);
        else
            out.fix = needed > 0 ? detail::fmt("more rounds: about %.0f (--max-trials %.0f) would separate the interval "
                                               "from the bar at this spread",
                                               needed, needed)
                                 : "the ratio sits on the bar";
    }
    return out;
}

// The notes that follow a timing decision: block rounding, a saving the client does not see, the
// costs per token the arms imply, stalls, a saving made outside the engine.
inline void add_timing_notes(const PhaseResult& r, const RunFacts& f, Verdict& v) {
    if (v.outcome != Outcome::pass) {
        if (!r.block_rounding.empty()) v.reason += "; block rounding: " + r.block_rounding;
        const std::string hidden = hidden_saving_note(r, f.bar);
        if (!hidden.empty()) {
            v.reason += hidden;
            v.fix = (v.fix.empty() ? "" : v.fix + "; or ") +
                    "gate on the engine's own prompt time (--ttft engine), which leaves the server's per-request work "
                    "out, or measure a model whose prefill outweighs it";
        }
    }
    if (const auto model = run_cost_model(r)) {
        v.physics = physics_note(r, *model, f.bar, f.plan, f.inv, f.cache);
        v.saving_per_cached_token_ms = model->per_recomputed_token_ms;
        v.per_prompt_token_ms = model->per_prompt_token_ms;
        if (v.outcome != Outcome::pass) v.reason += "; " + v.physics;
    }
    v.reason += stall_note(r);
    const std::string outside = outside_prefill_note(r);
    if (!outside.empty()) {
        v.reason += outside;
        if (v.fix.empty())
            v.fix = advice_or(engine_advice(r.phase.engine).prefill_alone,
                              "measure the engine as it serves prefill alone, or read the saving as cache management, "
                              "not prefill");
    }
}

}  // namespace verdict_detail

// Fills the result's arm statistics, degradation and verdict from its trials: the first of the
// ordered rules that applies decides (verdict_detail::rules_before_timing, then the timing).
inline void decide(PhaseResult& r, double threshold_pct, double confidence) {
    for (Arm arm : all_arms) r.stats(arm) = arm_stats(r.measured(arm));
    r.ttft_degradation_pct = r.hit_stats.ttft_mean > 0
                                 ? (r.miss_stats.ttft_mean - r.hit_stats.ttft_mean) / r.hit_stats.ttft_mean * 100
                                 : std::numeric_limits<double>::quiet_NaN();
    Verdict& v = r.verdict;
    v = Verdict{};
    v.threshold_pct = threshold_pct;
    v.confidence = confidence;
    const verdict_detail::RunFacts facts = verdict_detail::gather_facts(r, v, threshold_pct, confidence);
    std::optional<verdict_detail::Ruling> ruling;
    for (const auto rule : verdict_detail::rules_before_timing)
        if ((ruling = rule(facts))) break;
    if (!ruling) ruling = verdict_detail::timing_ruling(facts, v);
    v.outcome = ruling->outcome;
    v.reason = ruling->reason;
    v.fix = ruling->fix;
    if (ruling->notes) verdict_detail::add_timing_notes(r, facts, v);
}

}  // namespace kvgate
