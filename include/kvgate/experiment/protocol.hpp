// The seed's protocol, for any engine and any phase. Per trial: warm [A,B] with max_tokens=1, settle, then the
// measured query: hit = [A,B,Q], the seed's miss = [B,Q], cold = [A',B,Q] (A' fresh, A's length). Trials run
// in rounds of one per arm, in balanced orders (scheduled_arm), so drift hits every arm alike and each
// round pairs each other arm with its hit. After the configured rounds the verdict is looked at after
// every round; while it is undecided, rounds are added up to the cap and the time budget (sequential.hpp).
#pragma once

#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "kvgate/engine/engine.hpp"
#include "kvgate/engine/evidence.hpp"
#include "kvgate/experiment/baseline_gate.hpp"
#include "kvgate/experiment/prompt.hpp"
#include "kvgate/experiment/reuse_check.hpp"
#include "kvgate/experiment/run_record.hpp"
#include "kvgate/experiment/verdict.hpp"
#include "kvgate/model/records.hpp"
#include "kvgate/model/results_json.hpp"
#include "kvgate/model/settings.hpp"

namespace kvgate {

// Called after each trial: progress lines, and a checkpoint so that a fault or a kill loses nothing.
using TrialObserver = std::function<void(const PhaseResult&, const Trial&)>;

// A sequential stop rule: asked after every completed measured pair with the result so far; a reason
// ends the run there (recorded as PhaseResult::early_stop). For runs whose only question is whether
// the gate fails (the negative controls), never for the gates: the seed's protocol runs all trials.
using StopRule = std::function<std::optional<std::string>(const PhaseResult& partial)>;

// Stops once the cache evidence alone has decided `fail`, so that no further trial can change the
// verdict: the partial result still fails when every measured round is given a timing that clears any
// threshold (so timing did not decide), and the engine reports prefix caching off (so no later miss or
// cold request can be served from cache and turn the verdict into `unverified`). With caching off, a
// hit-arm request with no cached tokens decides this after the first measured round.
inline StopRule stop_when_evidence_decides() {
    return [](const PhaseResult& partial) -> std::optional<std::string> {
        if (partial.engine.prefix_caching) return std::nullopt;
        const double threshold = partial.settings.gate.threshold_pct, confidence = partial.settings.gate.confidence;
        PhaseResult now = partial;
        decide(now, threshold, confidence);
        if (now.verdict.outcome != Outcome::fail) return std::nullopt;
        PhaseResult favourable = partial;
        for (Trial& t : favourable.trials) t.ttft_ms = t.arm == Arm::hit ? 1 : 1e9;
        decide(favourable, threshold, confidence);
        if (favourable.verdict.outcome != Outcome::fail) return std::nullopt;
        return "stopped after " + std::to_string(partial.measured(Arm::hit).size()) +
               " measured rounds: the cache evidence decided 'fail' whatever the timing, and with prefix caching "
               "off no later miss can be served from cache (" +
               now.verdict.reason + ")";
    };
}

inline std::string progress_line(const PhaseResult& r, const Trial& t) {
    const int rounds = r.settings.hit_miss.warmup + r.settings.hit_miss.trials;
    const int round = t.index / arm_count + 1;
    char buf[256];
    std::snprintf(buf, sizeof buf, "[%s] trial %d (round %d/%d%s) %s%-10s TTFT %8.2f ms  cached %5d/%5d tokens",
                  r.phase.name.c_str(), t.number(), round, rounds, round > rounds ? ", added" : "",
                  t.warmup ? "warmup " : "", to_string(t.arm), t.ttft_ms, t.measured.usage.cached_tokens,
                  t.measured.usage.prompt_tokens);
    return buf;
}

// A checkpoint, written after a trial while the run goes on: statistics of the trials so far, and
// a verdict that says the file is partial (the run may be killed before it is rewritten).
inline void mark_partial(PhaseResult& r) {
    decide(r, r.settings.gate.threshold_pct, r.settings.gate.confidence);
    const int planned = arm_count * (r.settings.hit_miss.warmup + r.settings.hit_miss.trials);
    r.complete = false;
    r.verdict.outcome = Outcome::error;
    r.verdict.reason = "partial results: " + std::to_string(r.trials.size()) + " of at least " +
                       std::to_string(planned) +
                       " trials had been measured when this file was written (the run was still going, or was "
                       "killed); no verdict";
    r.verdict.fix = "let the run finish; a finished run's file says \"complete\": true or names its fault";
}

// The token count of a prompt's content alone: what the template (or a BOS token) adds to every
// rendered prompt is counted once per prompt, not once per part, so it is taken off each part.
inline std::optional<int> template_overhead(Engine& engine, const TemplateShape& shape) {
    if (auto empty = engine.count_tokens("")) return *empty;
    if (shape.known()) return shape.prefix_tokens + shape.suffix_tokens;
    return std::nullopt;
}

// Between rounds, once the configured rounds are measured: why no round is added (the verdict is decided,
// the cap is reached, the time budget is spent), or nullopt to add one. `spent_s`: time measuring so far.
// The one rule the protocol and the decision's simulation (bench/gate_sim.cpp) both follow.
inline std::optional<std::string> rounds_done(const PhaseResult& partial, double spent_s) {
    const Settings& s = partial.settings;
    const int measured = static_cast<int>(partial.measured(Arm::hit).size());
    PhaseResult now = partial;
    decide(now, s.gate.threshold_pct, s.gate.confidence);
    if (now.verdict.outcome != Outcome::indeterminate)
        return measured <= s.hit_miss.trials ? "decided at the first look, after the configured " + std::to_string(measured) +
                                          " rounds"
                                    : "decided after " + std::to_string(measured) + " rounds: " +
                                          std::to_string(measured - s.hit_miss.trials) +
                                          " added one at a time while the interval straddled the bar";
    if (measured >= std::max(s.hit_miss.trials, s.hit_miss.max_trials))
        return "undecided at the cap of " + std::to_string(measured) + " rounds (--max-trials)";
    if (s.hit_miss.time_budget_s > 0 && spent_s >= s.hit_miss.time_budget_s)
        return detail::fmt("undecided after %.0f rounds when the time budget ran out (%.0f s of %.0f s, "
                           "--time-budget-s)",
                           measured, spent_s, s.hit_miss.time_budget_s);
    return std::nullopt;
}

// The fault when the largest request the prepared prompts make (the hit's or cold arm's [A,B,Q],
// the template around it, and the output) exceeds the engine's context; nullopt when it fits or
// the engine cannot say.
inline std::optional<Fault> context_check(const std::vector<TrialPrompts>& prompts, int template_tokens,
                                          const Settings& s, std::optional<int> context) {
    if (!context || prompts.empty()) return std::nullopt;
    const TrialPrompts* largest = &prompts.front();
    const auto size = [](const TrialPrompts& p) { return std::max(p.a_tokens, p.a_cold_tokens) + p.b_tokens + p.q_tokens; };
    for (const TrialPrompts& p : prompts)
        if (size(p) > size(*largest)) largest = &p;
    const int need = size(*largest) + template_tokens + s.hit_miss.max_output_tokens;
    if (need <= *context) return std::nullopt;
    return Fault{FaultKind::context_too_long, FaultStage::setup,
                 "the largest request needs " + std::to_string(need) + " tokens (A " +
                     std::to_string(std::max(largest->a_tokens, largest->a_cold_tokens)) + " + B " +
                     std::to_string(largest->b_tokens) + " + Q " + std::to_string(largest->q_tokens) + " + template " +
                     std::to_string(template_tokens) + " + output " + std::to_string(s.hit_miss.max_output_tokens) +
                     "), more than the engine's context of " + std::to_string(*context) +
                     " tokens: lower --context-a-tokens, --context-b-tokens, --query-tokens or --max-output-tokens, "
                     "or serve a longer context (vLLM: --max-model-len, kvgate's fixture KVGATE_MAX_MODEL_LEN; llama-server: "
                     "--ctx-size per slot, kvgate's fixture KVGATE_LLAMACPP_CTX)"};
}

inline std::string measured_prompt(const TrialPrompts& p, Arm arm) {
    return arm == Arm::hit ? p.hit() : arm == Arm::miss ? p.miss() : p.cold();
}

// Runs `phase` on `engine`. Engines report failures as values, so this returns a result whatever
// happens: a fault stops the run and keeps the trials completed before it; so does `stop`.
inline PhaseResult run_phase(Engine& engine, const Settings& s, const PhaseDescriptor& phase,
                             const TrialObserver& observe = {}, const StopRule& stop = {}) {
    const auto started = Clock::now();
    PhaseResult r;
    r.phase = phase;
    r.settings = s;
    r.settings.hit_miss.max_output_tokens = engine.output_tokens(s.hit_miss.max_output_tokens);
    const RunHeader header = run_header(s.seed);
    r.timestamp = header.timestamp;
    r.git_revision = header.git_revision;
    r.settings.seed = header.seed;
    r.engine = engine.describe();
    {
        const auto a = engine.token_ids(template_probe_a());
        const auto b = engine.token_ids(template_probe_b());
        if (a && b) r.engine.template_shape = template_shape(*a, *b);
    }
    // A baseline is read and checked before anything is timed: an incomparable one is misuse.
    std::optional<LoadedBaseline> baseline;
    std::vector<std::string> baseline_differences;
    if (!s.baseline.path.empty()) {
        baseline = load_baseline(s.baseline.path, phase);
        baseline_differences = check_baseline(*baseline, r, s.baseline.comparable);
    }

    // Content is sized with the engine's tokenizer, never while a request is timed. Parts are sized by
    // their content: A + B + Q is then at least the targets' sum, plus the template once.
    const std::optional<int> overhead = template_overhead(engine, r.engine.template_shape);
    PromptBuilder builder(r.settings.seed, [&](const std::string& text) -> std::optional<int> {
        const auto n = engine.count_tokens(text);
        if (!n || !overhead) return n;
        return std::max(0, *n - *overhead);
    });
    const auto detokenize = [&](const TokenIds& ids) {
        if (auto text = engine.detokenize(ids)) return *text;
        std::string list;  // the engine cannot decode: the ids at least locate the difference
        for (int id : ids) list += (list.empty() ? "#" : " #") + std::to_string(id);
        return list;
    };
    ReusePlanner planner(r.engine.block_size, r.engine.template_shape, detokenize);
    std::vector<TrialPrompts> prompts;
    std::vector<TrialReuse> planned;
    // A round's content is built and rendered (the ids each request must reuse) before its first request,
    // never between a warm request and its measured one.
    const auto prepare_round = [&](int round) {
        for (int i = round * arm_count; i < (round + 1) * arm_count; ++i) {
            const Arm arm = scheduled_arm(i);
            prompts.push_back(builder.build(i, s.hit_miss.context_a_tokens, s.hit_miss.context_b_tokens, s.hit_miss.query_tokens));
            const TrialPrompts& p = prompts.back();
            auto warm = engine.token_ids(p.warm());
            auto warm_again = warm ? engine.token_ids(p.warm()) : std::nullopt;
            auto measured = warm_again ? engine.token_ids(measured_prompt(p, arm)) : std::nullopt;
            std::optional<RenderedTrial> ids;
            if (measured) ids = RenderedTrial{std::move(*warm), std::move(*warm_again), std::move(*measured)};
            planned.push_back(planner.add(ids, arm));
        }
    };
    const int first_rounds = s.hit_miss.warmup + s.hit_miss.trials;
    for (int round = 0; round < first_rounds; ++round) prepare_round(round);
    r.sizes_estimated = builder.sizes_estimated();
    r.block_rounding = planner.block_rounding_note();
    // A request over the engine's context would fail mid-run with the server's error; say so before
    // anything is timed, with the sizes that make up the largest request.
    if (const auto fault = context_check(prompts, overhead.value_or(0), r.settings, engine.context_tokens())) {
        r.fault = fault;
        r.complete = false;
        r.wall_time_s = ms_between(started, Clock::now()) / 1000;
        decide(r, s.gate.threshold_pct, s.gate.confidence);
        return r;
    }

    const CounterSnapshot before = engine.prefix_cache_counters();
    const auto measuring_since = Clock::now();
    std::string rounds_reason;
    for (int i = 0;; ++i) {
        const int round = i / arm_count;
        if (i % arm_count == 0 && round >= first_rounds) {
            if (auto done = rounds_done(r, ms_between(measuring_since, Clock::now()) / 1000)) {
                rounds_reason = *done;
                break;
            }
            prepare_round(round);
        }
        Trial t;
        t.index = i;
        t.arm = scheduled_arm(i);
        t.reuse = planned[i];
        t.warmup = round < s.hit_miss.warmup;
        const TrialPrompts& p = prompts[i];
        t.warm_prompt_tokens_expected = p.a_tokens + p.b_tokens;
        t.prompt_tokens_expected = (t.arm == Arm::hit    ? p.a_tokens
                                    : t.arm == Arm::cold ? p.a_cold_tokens
                                                         : 0) +
                                   p.b_tokens + p.q_tokens;

        auto fail = [&](Completion& c, FaultRequest request) {
            c.fault->trial = t.number();
            c.fault->request = request;
            c.fault->message = "trial " + std::to_string(t.number()) + " (" + to_string(t.arm) + "), " +
                               to_string(request) + " request, stage " + to_string(c.fault->stage) + ": " +
                               c.fault->message;
            r.fault = c.fault;
        };
        Completion warm = engine.complete(p.warm(), 1);
        t.warm = warm.record;
        // A warm request needs the prefill done, not a visible token: a stream that completed
        // with its one token's text empty (a special token, a lone byte) warmed the cache all the same.
        if (warm.fault && warm.fault->kind == FaultKind::no_tokens) warm.fault.reset();
        if (warm.fault) {
            fail(warm, FaultRequest::warm);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(s.hit_miss.settle_ms));
        Completion measured = engine.complete(measured_prompt(p, t.arm), r.settings.hit_miss.max_output_tokens);
        t.measured = measured.record;
        if (measured.fault) {
            fail(measured, FaultRequest::measured);
            break;
        }
        classify_trial_reuse(t, r.engine.block_size);
        t.ttft_ms = t.measured.stamps.first_token_ms.value_or(0);
        if (r.settings.gate.ttft == TtftSource::engine) {
            if (!t.measured.engine_ttft_ms) {
                measured.fault = Fault{FaultKind::no_engine_ttft, FaultStage::stream,
                                       "the server reported no time to first token of its own, which KVGATE_TTFT=engine "
                                       "compares (llama.cpp: timings.prompt_ms; vLLM: --enable-per-request-metrics); "
                                       "use KVGATE_TTFT=client for this server"};
                fail(measured, FaultRequest::measured);
                break;
            }
            t.ttft_ms = *t.measured.engine_ttft_ms;
        }
        t.total_time_ms = t.measured.stamps.done_ms.value_or(0);
        const int completion = std::max(0, t.measured.usage.completion_tokens);
        t.throughput = t.total_time_ms > 0 ? completion / (t.total_time_ms / 1000) : 0;
        r.trials.push_back(t);
        if (observe) {
            mark_partial(r);
            observe(r, r.trials.back());
        }
        if (stop && i % arm_count == arm_count - 1 && !t.warmup)
            if ((r.early_stop = stop(r))) break;
    }
    r.counters = counter_deltas(before, engine.prefix_cache_counters());
    r.complete = !r.fault;
    r.wall_time_s = ms_between(started, Clock::now()) / 1000;
    decide(r, s.gate.threshold_pct, s.gate.confidence);
    r.verdict.rounds_reason = r.early_stop ? "stopped early: the evidence decided" : rounds_reason;
    if (baseline && r.verdict.outcome != Outcome::error) {
        r.baseline = compare_runs(*baseline, r, s.baseline.regression_pct, baseline_differences);
        fold_baseline(r.verdict, *r.baseline);
    }
    return r;
}

// Experiment 1's answer in the shared vocabulary: the verdict, and the medians, cache tallies, rounds
// and counters it rests on.
inline RunHeadline phase_headline(const PhaseResult& r) {
    std::ostringstream details;
    details << "hit median " << r.hit_stats.ttft_median << " ms, miss median " << r.miss_stats.ttft_median
            << " ms, cold median " << r.cold_stats.ttft_median << " ms; cached tokens (median) hit "
            << r.hit_stats.cached_tokens_median << ", miss " << r.miss_stats.cached_tokens_median << ", cold "
            << r.cold_stats.cached_tokens_median << "; rounds " << r.verdict.rounds << " (" << r.verdict.rounds_reason
            << "); cache counters hits +" << r.counters.hits << " of queries +" << r.counters.queries << "; wall "
            << r.wall_time_s << " s";
    return {r.verdict.outcome, r.verdict.reason, r.verdict.fix, {details.str()}};
}

// run_phase through the shared run-and-record loop: the results file at `path` after every trial and
// at the end, a progress line per trial.
inline PhaseResult record_phase(Engine& engine, const Settings& s, const PhaseDescriptor& phase,
                                const std::filesystem::path& path, std::ostream& progress, const StopRule& stop = {}) {
    return run_and_record<PhaseResult>(
        path, progress,
        [&](const Checkpoint<PhaseResult>& checkpoint) {
            return run_phase(engine, s, phase,
                             [&](const PhaseResult& partial, const Trial& t) { checkpoint(partial, progress_line(partial, t)); },
                             stop);
        },
        write_results);
}

}  // namespace kvgate
