// The seed's trial loop against a scripted in-memory engine: the schedule (rounds of three arms), what
// warm-ups are, when rounds are added, what a fault keeps, when the observer is called, and trial numbers as people count them.
#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "kvgate/experiment/protocol.hpp"
#include "kvgate/model/results_json.hpp"
#include "kvgate/report/report_markdown.hpp"

using namespace kvgate;

namespace {

// Serves from a perfect prefix cache: a measured prompt that extends the last warm prompt is a hit
// (fast, every warmed token cached), anything else a miss (slow, nothing cached). Warm requests
// ask for 1 token, measured ones for more. Call `fail_at` (0-based) returns a fault instead.
class ScriptedEngine : public Engine {
public:
    struct Call {
        bool warm;
        bool hit;
        std::string prompt;
    };
    std::vector<Call> calls;
    std::optional<std::size_t> fail_at;
    std::optional<std::size_t> no_tokens_at;  // this call completes, but its one token had no text
    int bos = 0;                              // tokens the tokenizer adds to every prompt
    double warmup_ttft_ms = 999;  // the first round's measured requests, to see whether stats count them
    int warmup_calls = 6;
    bool caching = true;          // false: nothing is ever a hit, and describe() says so
    bool reports_caching = true;  // false: describe() claims caching on whatever `caching` is
    bool reports_cached = true;   // false: no per-request cached-token counts (-1)
    std::optional<int> context;   // context_tokens(): the most tokens a request may hold

    std::optional<int> context_tokens() override { return context; }

    EngineInfo describe() override {
        EngineInfo info;
        info.name = "scripted";
        info.block_size = 1;
        info.prefix_caching = caching || !reports_caching;
        return info;
    }
    std::optional<int> count_tokens(const std::string& prompt) override {
        return bos + static_cast<int>(prompt.size() / 4);  // any stable count will do
    }
    CounterSnapshot prefix_cache_counters() override { return {true, queries_, hits_}; }

    Completion complete(const std::string& prompt, int max_tokens) override {
        Completion c;
        const bool warm = max_tokens == 1;
        const bool hit = caching && !warm && !last_warm_.empty() && prompt.rfind(last_warm_, 0) == 0;
        const std::size_t call = calls.size();
        calls.push_back({warm, hit, prompt});
        if (no_tokens_at && call == *no_tokens_at) {  // as HttpEngine reports a stream without token text
            c.record.usage = {count_tokens(prompt).value_or(0), 1, 0};
            c.fault = Fault{FaultKind::no_tokens, FaultStage::stream, "the stream completed without a generated token"};
            if (warm) last_warm_ = prompt;
            return c;
        }
        if (fail_at && call == *fail_at) {
            c.fault = Fault{FaultKind::closed_mid_stream, FaultStage::stream, "scripted close"};
            return c;
        }
        const int tokens = count_tokens(prompt).value_or(0);
        const int cached = warm || !hit ? 0 : static_cast<int>(last_warm_.size() / 4);
        queries_ += tokens;
        hits_ += cached;
        if (warm) last_warm_ = prompt;
        // Hits vary a little, as real timings do (identical ratios would be a zero-width interval).
        const double ttft = warm ? 5
                            : static_cast<int>(call) < warmup_calls ? warmup_ttft_ms
                            : hit ? 10 + 0.01 * static_cast<double>(call % 7)
                                  : 30;
        c.record.stamps.first_token_ms = ttft;
        c.record.stamps.done_ms = ttft + max_tokens;
        c.record.usage = {tokens, max_tokens, reports_cached ? cached : -1};
        return c;
    }

private:
    std::string last_warm_;
    double queries_ = 0, hits_ = 0;
};

Settings quick(int trials, int warmup) {
    Settings s;
    s.hit_miss.trials = trials;
    s.hit_miss.warmup = warmup;
    s.hit_miss.settle_ms = 0;
    s.hit_miss.context_a_tokens = 64;
    s.hit_miss.context_b_tokens = 32;
    s.hit_miss.query_tokens = 8;
    s.hit_miss.max_output_tokens = 5;
    s.seed = 42;
    s.hit_miss.max_trials = trials;  // no rounds added: the sequential decision has tests of its own
    s.gate.confidence = 0.5;     // so that two rounds can decide: these tests are of the protocol, not the statistics
    return s;
}

const PhaseDescriptor& phase1() { return phase_descriptor("phase1"); }

}  // namespace

TEST_CASE("protocol: trials run in rounds of three arms, warm then measured, and the prompts are what the arm says",
          "[protocol]") {
    ScriptedEngine engine;
    const PhaseResult r = run_phase(engine, quick(3, 1), phase1());
    std::vector<Arm> arms;
    for (const auto& t : r.trials) arms.push_back(t.arm);
    CHECK(arms == std::vector<Arm>{Arm::hit, Arm::miss, Arm::cold, Arm::miss, Arm::cold, Arm::hit, Arm::cold, Arm::hit,
                                   Arm::miss, Arm::cold, Arm::miss, Arm::hit});
    REQUIRE(engine.calls.size() == 2 * r.trials.size());
    for (std::size_t i = 0; i < r.trials.size(); ++i) {
        INFO("trial " << r.trials[i].number());
        const Trial& t = r.trials[i];
        const std::string& warm = engine.calls[2 * i].prompt;
        const std::string& measured = engine.calls[2 * i + 1].prompt;
        CHECK(engine.calls[2 * i].warm);
        CHECK_FALSE(engine.calls[2 * i + 1].warm);
        CHECK(engine.calls[2 * i + 1].hit == (t.arm == Arm::hit));
        CHECK(t.index == static_cast<int>(i));
        // hit [A,B,Q] extends [A,B]; miss [B,Q] and cold [A',B,Q] share [A,B]'s B; cold is as long as the hit.
        if (t.arm == Arm::hit) CHECK(measured.rfind(warm, 0) == 0);
        if (t.arm != Arm::hit) CHECK(measured.rfind(warm, 0) != 0);
        if (t.arm == Arm::cold) {  // A' as long as A (to its 1 % slack), so cold is the hit's length
            const int beyond_warm = t.prompt_tokens_expected - t.warm_prompt_tokens_expected;
            CHECK(beyond_warm >= 8);  // Q
            CHECK(beyond_warm <= 8 + 1 + 1);
        }
    }
    CHECK(r.verdict.invalidation.outcome == Outcome::pass);
    CHECK(r.verdict.cache.outcome == Outcome::pass);
    CHECK(r.verdict.cache.ratio == Approx(3).epsilon(0.01));
    CHECK_THAT(r.verdict.rounds_reason, Catch::Contains("decided at the first look"));
    CHECK(r.complete);
    CHECK(r.verdict.outcome == Outcome::pass);
    CHECK(r.phase == phase1());
    CHECK(r.settings.seed == 42);
    CHECK(r.engine.name == "scripted");
    CHECK(r.counters.available);
    CHECK(r.counters.hits > 0);
}

TEST_CASE("protocol: warm-up trials are measured and kept, but not counted", "[protocol]") {
    ScriptedEngine engine;
    const PhaseResult r = run_phase(engine, quick(2, 1), phase1());
    REQUIRE(r.trials.size() == 9);
    CHECK(r.trials[0].warmup);
    CHECK(r.trials[2].warmup);
    CHECK(r.trials[0].ttft_ms == 999);  // measured...
    CHECK_FALSE(r.trials[3].warmup);
    CHECK(r.hit_stats.n == 2);  // ...but not counted
    CHECK(r.miss_stats.n == 2);
    CHECK(r.cold_stats.n == 2);
    CHECK(r.cold_stats.ttft_mean == 30);
    CHECK(r.hit_stats.ttft_mean == Approx(10).epsilon(0.01));
    CHECK(r.miss_stats.ttft_mean == 30);
    CHECK(r.ttft_degradation_pct == Approx(200).epsilon(0.01));
}

TEST_CASE("protocol: a fault stops the run, keeps the completed trials and names the trial from 1", "[protocol]") {
    ScriptedEngine engine;
    engine.fail_at = 7;  // trial 4's measured request (calls 0-1 are trial 1's), a miss
    int observed = 0;
    std::vector<int> numbers;
    const PhaseResult r = run_phase(engine, quick(3, 1), phase1(), [&](const PhaseResult& partial, const Trial& t) {
        ++observed;
        numbers.push_back(t.number());
        CHECK(&partial.trials.back() == &t);
        CHECK(progress_line(partial, t).find("trial " + std::to_string(t.number()) + " (round " +
                                             std::to_string(t.index / 3 + 1) + "/4)") != std::string::npos);
    });
    CHECK(engine.calls.size() == 8);  // nothing after the fault
    CHECK(r.trials.size() == 3);
    CHECK(observed == 3);
    CHECK(numbers == std::vector<int>{1, 2, 3});
    CHECK_FALSE(r.complete);
    REQUIRE(r.fault);
    CHECK(r.fault->trial == 4);
    CHECK(r.fault->request == FaultRequest::measured);
    CHECK(r.fault->kind == FaultKind::closed_mid_stream);
    CHECK(r.fault->message.rfind("trial 4 (cache_miss), measured request, stage stream: scripted close", 0) == 0);
    CHECK(r.verdict.outcome == Outcome::error);
    CHECK(to_json(r).at("fault").at("trial") == 4);
    CHECK(to_json(r).at("fault").at("request") == "measured");
    CHECK(summary_markdown({r}, {}).find("in trial 4, measured request, stage stream") != std::string::npos);
}

TEST_CASE("protocol: a fault in the first warm request keeps nothing and says trial 1", "[protocol]") {
    ScriptedEngine engine;
    engine.fail_at = 0;
    int observed = 0;
    const PhaseResult r = run_phase(engine, quick(2, 0), phase1(), [&](const PhaseResult&, const Trial&) { ++observed; });
    CHECK(observed == 0);
    CHECK(r.trials.empty());
    REQUIRE(r.fault);
    CHECK(r.fault->trial == 1);
    CHECK(r.fault->request == FaultRequest::warm);
    CHECK(r.verdict.outcome == Outcome::error);
}

TEST_CASE("protocol: a request over the engine's context is refused before any trial, with its sizes", "[protocol]") {
    ScriptedEngine engine;
    const Settings s = quick(2, 0);  // A 64 + B 32 + Q 8 content tokens, 5 output tokens
    engine.context = 100;
    const PhaseResult r = run_phase(engine, s, phase1());
    CHECK(engine.calls.empty());  // nothing was sent
    CHECK(r.trials.empty());
    REQUIRE(r.fault);
    CHECK(r.fault->kind == FaultKind::context_too_long);
    CHECK(r.fault->stage == FaultStage::setup);
    CHECK_THAT(r.fault->message, Catch::Contains("more than the engine's context of 100 tokens") &&
                                     Catch::Contains("output 5") && Catch::Contains("--context-a-tokens"));
    CHECK(r.verdict.outcome == Outcome::error);
    CHECK_FALSE(r.complete);

    engine.context = 1000;  // room enough: the run goes on
    const PhaseResult fits = run_phase(engine, s, phase1());
    CHECK_FALSE(fits.fault);
    CHECK(fits.trials.size() == 6u);
}

TEST_CASE("protocol: the observer is called once per trial, in order, with the result so far", "[protocol]") {
    ScriptedEngine engine;
    std::vector<std::size_t> sizes;
    const PhaseResult r = run_phase(engine, quick(2, 1), phase1(),
                                    [&](const PhaseResult& partial, const Trial&) { sizes.push_back(partial.trials.size()); });
    CHECK(sizes == std::vector<std::size_t>{1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(r.trials.size() == 9);
}

TEST_CASE("protocol: an engine that can time only one output token has its run recorded so", "[protocol]") {
    struct OneToken : ScriptedEngine {
        int output_tokens(int) const override { return 1; }
    } engine;
    engine.warmup_calls = 0;
    const PhaseResult r = run_phase(engine, quick(2, 0), phase1());
    CHECK(r.settings.hit_miss.max_output_tokens == 1);
    // Every measured request asked for one token: the engine cannot tell warm from measured now.
    for (const auto& c : engine.calls) CHECK(c.warm);
}

TEST_CASE("protocol: a warm request whose one token has no text still warms: the run goes on", "[protocol]") {
    ScriptedEngine engine;
    engine.no_tokens_at = 0;  // trial 1's warm request
    const PhaseResult r = run_phase(engine, quick(2, 1), phase1());
    INFO(r.verdict.reason);
    CHECK_FALSE(r.fault);
    CHECK(r.complete);
    CHECK(r.trials.size() == 9);
    CHECK(r.verdict.outcome == Outcome::pass);
}

TEST_CASE("protocol: a measured request without a first-token stamp is still a fault", "[protocol]") {
    ScriptedEngine engine;
    engine.no_tokens_at = 1;  // trial 1's measured request: no TTFT to record
    const PhaseResult r = run_phase(engine, quick(2, 1), phase1());
    REQUIRE(r.fault);
    CHECK(r.fault->kind == FaultKind::no_tokens);
    CHECK(r.fault->request == FaultRequest::measured);
}

TEST_CASE("protocol: checkpoints before the verdict say they are partial and carry real statistics", "[protocol]") {
    ScriptedEngine engine;
    engine.warmup_calls = 0;
    std::vector<std::string> reasons;
    const PhaseResult r = run_phase(engine, quick(2, 0), phase1(), [&](const PhaseResult& partial, const Trial&) {
        CHECK_FALSE(partial.complete);
        CHECK(partial.verdict.outcome == Outcome::error);
        reasons.push_back(partial.verdict.reason);
        if (partial.trials.size() == 3) {
            CHECK(partial.hit_stats.n == 1);
            CHECK(partial.hit_stats.ttft_mean == Approx(10).epsilon(0.01));
            CHECK(partial.miss_stats.ttft_mean == 30);
            CHECK(partial.cold_stats.ttft_mean == 30);
        }
    });
    REQUIRE(reasons.size() == 6);
    CHECK_THAT(reasons[1], Catch::StartsWith("partial results: 2 of at least 6 trials had been measured"));
    CHECK(r.complete);
    CHECK(r.verdict.outcome == Outcome::pass);
}

TEST_CASE("protocol: a BOS token is counted once per prompt, not once per part", "[protocol]") {
    ScriptedEngine engine;
    engine.bos = 1;
    const Settings s = quick(3, 0);
    const PhaseResult r = run_phase(engine, s, phase1());
    for (const auto& c : engine.calls) {
        if (!c.warm) continue;
        INFO(c.prompt);
        // [A,B] as the engine sees it: one BOS, then at least A's and B's targets in content tokens.
        CHECK(*engine.count_tokens(c.prompt) - engine.bos >= s.hit_miss.context_a_tokens + s.hit_miss.context_b_tokens);
    }
    for (const auto& t : r.trials) CHECK(t.warm_prompt_tokens_expected >= s.hit_miss.context_a_tokens + s.hit_miss.context_b_tokens);
}

TEST_CASE("protocol: the template's shape is measured from two renderings and recorded", "[protocol]") {
    struct Templated : ScriptedEngine {
        // <s> <|user|> content... <|end|> <|assistant|>: ids per 4 characters of content
        std::optional<TokenIds> token_ids(const std::string& prompt) override {
            TokenIds ids = {1, 7};
            for (std::size_t i = 0; i + 4 <= prompt.size(); i += 4)
                ids.push_back(100 + static_cast<int>(static_cast<unsigned char>(prompt[i]) * 7 + prompt[i + 1]));
            ids.push_back(8);
            ids.push_back(9);
            return ids;
        }
    } engine;
    const PhaseResult r = run_phase(engine, quick(2, 0), phase1());
    CHECK(r.engine.template_shape.prefix_tokens == 2);
    CHECK(r.engine.template_shape.suffix_tokens == 2);
    CHECK(to_json(r).at("engine").at("template_prefix_tokens") == 2);
}

TEST_CASE("protocol: KVGATE_TTFT=engine compares the engine's own time, and a server without one is a fault",
          "[protocol]") {
    struct Timed : ScriptedEngine {
        Completion complete(const std::string& prompt, int max_tokens) override {
            Completion c = ScriptedEngine::complete(prompt, max_tokens);
            if (c.record.stamps.first_token_ms) c.record.engine_ttft_ms = *c.record.stamps.first_token_ms / 2;
            return c;
        }
    };
    Settings s = quick(2, 0);
    s.gate.ttft = TtftSource::engine;
    Timed timed;
    const PhaseResult r = run_phase(timed, s, phase1());
    REQUIRE_FALSE(r.fault);
    for (const Trial& t : r.trials) {
        REQUIRE(t.measured.stamps.first_token_ms);
        CHECK(t.ttft_ms == Approx(*t.measured.stamps.first_token_ms / 2));
    }
    CHECK_THAT(r.verdict.method, Catch::Contains("engine's own"));

    ScriptedEngine untimed;
    const PhaseResult u = run_phase(untimed, s, phase1());
    REQUIRE(u.fault);
    CHECK(u.fault->kind == FaultKind::no_engine_ttft);
    CHECK(u.fault->trial == 1);
    CHECK(u.fault->request == FaultRequest::measured);
    CHECK_THAT(u.fault->message, Catch::Contains("KVGATE_TTFT=client"));
    CHECK(u.trials.empty());
}

namespace {

// Renders one id per 4 characters; with `vary`, a template inserts a fresh id at token 10 of every
// rendering (a request id), and the server then reuses only the 10 tokens before it.
class TokenizingEngine : public ScriptedEngine {
public:
    bool vary = false;
    int renderings = 0;

    std::optional<TokenIds> token_ids(const std::string& prompt) override {
        std::vector<int> ids;
        for (std::size_t i = 0; i + 4 <= prompt.size(); i += 4)
            ids.push_back(static_cast<int>(std::hash<std::string>{}(prompt.substr(i, 4)) % 50000));
        if (vary && ids.size() > 10) ids.insert(ids.begin() + 10, 60000 + renderings++);
        return ids;
    }
    std::optional<std::string> detokenize(const std::vector<int>& ids) override {
        std::string s;
        for (int id : ids) s += id >= 60000 ? "[req " + std::to_string(id - 60000) + "]" : ".";
        return s;
    }
    Completion complete(const std::string& prompt, int max_tokens) override {
        Completion c = ScriptedEngine::complete(prompt, max_tokens);
        if (vary && c.record.usage.cached_tokens > 10) c.record.usage.cached_tokens = 10;
        return c;
    }
};

}  // namespace

TEST_CASE("each trial's expected reuse is planned from the rendered ids before timing", "[protocol]") {
    TokenizingEngine engine;
    const auto r = run_phase(engine, quick(3, 1), phase_descriptor("phase1"));
    REQUIRE(r.trials.size() == 12);
    for (const auto& t : r.trials) {
        CHECK(t.reuse.checked);
        CHECK(t.reuse.reported_class == (t.arm == Arm::hit ? "full" : "none"));
        if (t.arm == Arm::hit) CHECK(t.reuse.expected == t.measured.usage.cached_tokens);
    }
    CHECK(r.verdict.outcome == Outcome::pass);
    const auto back = phase_result_from_json(to_json(r), "results_phase1.json", &phase_descriptor("phase1"));
    CHECK(back.trials[0].reuse.expected == r.trials[0].reuse.expected);
    CHECK(back.trials[0].reuse.reported_class == "full");
}

TEST_CASE("a template that renders a varying value fails the run with the divergence named", "[protocol]") {
    TokenizingEngine engine;
    engine.vary = true;
    const auto r = run_phase(engine, quick(3, 0), phase_descriptor("phase1"));
    CHECK(r.verdict.outcome == Outcome::fail);
    CHECK_THAT(r.verdict.reason, Catch::Contains("reused less of the warmed prefix than expected") &&
                                     Catch::Contains("the warm prompt rendered twice differs at token 10") &&
                                     Catch::Contains("[req "));
    CHECK_THAT(r.verdict.fix, Catch::Contains("at token 10"));
    CHECK(r.trials[0].reuse.divergence_at == 10);
}

TEST_CASE("protocol: a stop rule ends the run after a completed round and the result says why", "[protocol][stop]") {
    ScriptedEngine engine;
    std::vector<std::size_t> asked;
    const PhaseResult r = run_phase(engine, quick(5, 1), phase1(), {}, [&](const PhaseResult& partial) {
        asked.push_back(partial.trials.size());
        return partial.measured(Arm::hit).size() == 3 ? std::optional<std::string>("enough") : std::nullopt;
    });
    CHECK(asked == std::vector<std::size_t>{6, 9, 12});  // after each measured round, never after a warm-up
    CHECK(r.trials.size() == 12);
    CHECK(engine.calls.size() == 24);
    REQUIRE(r.early_stop);
    CHECK(*r.early_stop == "enough");
    CHECK(r.complete);
    CHECK(r.verdict.outcome == Outcome::pass);  // decided on the trials it ran
    CHECK(to_json(r).at("early_stop") == "enough");
    CHECK(phase_result_from_json(to_json(r), "x").early_stop == r.early_stop);
    CHECK(summary_markdown({r}, {}).find("Stopped early:** enough") != std::string::npos);
}

TEST_CASE("protocol: without prefix caching the evidence decides 'fail' after one round", "[protocol][stop]") {
    ScriptedEngine engine;
    engine.caching = false;
    const PhaseResult r = run_phase(engine, quick(10, 1), phase1(), {}, stop_when_evidence_decides());
    CHECK(r.measured(Arm::hit).size() == 1);
    CHECK(r.trials.size() == 6);
    REQUIRE(r.early_stop);
    CHECK(r.early_stop->find("stopped after 1 measured rounds") != std::string::npos);
    CHECK(r.verdict.outcome == Outcome::fail);
    CHECK_THAT(r.verdict.reason, Catch::Contains("the server reports prefix caching off"));
    CHECK_THAT(r.verdict.fix, Catch::Contains("turn prefix caching on"));
}

TEST_CASE("protocol: the evidence stop rule never stops a run it has not decided", "[protocol][stop]") {
    SECTION("a working cache: the gate's trials all run") {
        ScriptedEngine engine;
        const PhaseResult r = run_phase(engine, quick(4, 1), phase1(), {}, stop_when_evidence_decides());
        CHECK(r.trials.size() == 15);
        CHECK_FALSE(r.early_stop);
        CHECK_FALSE(to_json(r).contains("early_stop"));  // the previous version's layout
        CHECK(r.verdict.outcome == Outcome::pass);
    }
    SECTION("caching reported on: a later miss served from cache could still make it unverified") {
        ScriptedEngine engine;
        engine.caching = false;
        engine.reports_caching = false;
        const PhaseResult r = run_phase(engine, quick(4, 1), phase1(), {}, stop_when_evidence_decides());
        CHECK(r.trials.size() == 15);
        CHECK_FALSE(r.early_stop);
        CHECK(r.verdict.outcome == Outcome::fail);
    }
    SECTION("no per-request evidence: a timing verdict may change with more rounds") {
        ScriptedEngine engine;
        engine.caching = false;
        engine.reports_cached = false;
        const PhaseResult r = run_phase(engine, quick(4, 1), phase1(), {}, stop_when_evidence_decides());
        CHECK(r.trials.size() == 15);
        CHECK_FALSE(r.early_stop);
    }
}

namespace {

// vLLM's path with a real chat template (ChatML, as Qwen2.5's): a system header before the content and
// the end of turn + generation prompt after it ("<|im_end|>\n<|im_start|>assistant\n", 5 ids), block
// size 16. The cache stores every served prompt's whole blocks and serves the longest stored prefix,
// floored to whole blocks, at most n - 1 (vLLM's rule). With `time_at`, the template renders the time
// of day at that token of every prompt, a fresh value per rendering.
class ChatTemplateEngine : public ScriptedEngine {
public:
    static constexpr int block = 16;
    std::optional<int> time_at;
    int renderings = 0;

    EngineInfo describe() override {
        EngineInfo info;
        info.name = "chatml";
        info.block_size = block;
        info.prefix_caching = true;
        return info;
    }
    std::optional<TokenIds> token_ids(const std::string& prompt) override {
        TokenIds ids = {1};  // BOS
        for (int i = 0; i < 24; ++i) ids.push_back(200 + i);  // <|im_start|>system ... <|im_end|> <|im_start|>user
        for (std::size_t i = 0; i + 4 <= prompt.size(); i += 4)
            ids.push_back(1000 + static_cast<int>(std::hash<std::string>{}(prompt.substr(i, 4)) % 50000));
        for (int id : {90, 91, 92, 93, 91}) ids.push_back(id);  // <|im_end|> \n <|im_start|> assistant \n
        if (time_at) ids.insert(ids.begin() + *time_at, 70000 + renderings++);
        return ids;
    }
    std::optional<int> count_tokens(const std::string& prompt) override {
        return static_cast<int>(token_ids(prompt)->size());
    }
    std::optional<std::string> detokenize(const std::vector<int>& ids) override {
        std::string s;
        for (int id : ids) s += id >= 70000 ? "18:0" + std::to_string(id % 10) + ":25 " : id == 90 ? "<|im_end|>" : ".";
        return s;
    }
    Completion complete(const std::string& prompt, int max_tokens) override {
        const TokenIds ids = *token_ids(prompt);
        const int n = static_cast<int>(ids.size());
        Completion c;
        const int cached = reusable_tokens(longest_shared_prefix(ids, stored_), n, block);
        stored_.push_back(ids);
        const double ttft = 5 + 0.5 * (n - cached) + 0.01 * static_cast<double>(stored_.size() % 7);
        c.record.stamps.first_token_ms = ttft;
        c.record.stamps.done_ms = ttft + max_tokens;
        c.record.usage = {n, max_tokens, cached};
        return c;
    }

private:
    std::vector<TokenIds> stored_;
};

}  // namespace

TEST_CASE("protocol: a healthy cache with a chat template's generation prompt passes, whole blocks straddled",
          "[protocol][template]") {
    ChatTemplateEngine engine;
    const PhaseResult r = run_phase(engine, quick(8, 1), phase1());
    REQUIRE_FALSE(r.fault);
    CHECK(r.engine.template_shape.suffix_tokens == 5);
    // The case the rule must get right: the warm prompt's generation prompt crosses a block boundary
    // its content does not reach, so the measured prompt cannot reuse that block.
    int straddled = 0;
    for (const Trial& t : r.trials)
        if (t.arm == Arm::hit) {
            const int content_end = t.warm.usage.prompt_tokens - 5;
            straddled += content_end / 16 != t.warm.usage.prompt_tokens / 16;
            CHECK(t.reuse.expected == content_end / 16 * 16);
            CHECK(t.reuse.reported_class == "full");
        }
    REQUIRE(straddled > 0);
    CHECK(r.verdict.outcome == Outcome::pass);
}

TEST_CASE("protocol: a time of day in the chat template fails with the divergence named, mid-prompt or first",
          "[protocol][template]") {
    SECTION("in the system header: the hit reuses the blocks before it") {
        ChatTemplateEngine engine;
        engine.time_at = 20;
        const PhaseResult r = run_phase(engine, quick(3, 0), phase1());
        CHECK(r.verdict.outcome == Outcome::fail);
        CHECK_THAT(r.verdict.reason, Catch::Contains("reused 16 of the") &&
                                         Catch::Contains("the warm prompt rendered twice differs at token 20") &&
                                         Catch::Contains("18:0"));
        CHECK_THAT(r.verdict.fix, Catch::Contains("at token 20"));
    }
    SECTION("at the start: every hit reuses nothing, and the template, not the cache, is named") {
        ChatTemplateEngine engine;
        engine.time_at = 1;
        const PhaseResult r = run_phase(engine, quick(3, 0), phase1());
        CHECK(r.verdict.outcome == Outcome::fail);
        CHECK_THAT(r.verdict.reason, Catch::Contains("reused 0 of the") &&
                                         Catch::Contains("the warm prompt rendered twice differs at token 1"));
        CHECK_THAT(r.verdict.reason, !Catch::Contains("did not serve the warmed prefix"));
    }
}

namespace {

// A cache whose first two cold requests happened to be as fast as a hit: the first look cannot decide,
// and rounds are added until the sign test's interval clears the bar.
struct EarlyFastCold : ScriptedEngine {
    int colds = 0;
    Completion complete(const std::string& prompt, int max_tokens) override {
        Completion c = ScriptedEngine::complete(prompt, max_tokens);
        const bool measured_cold = max_tokens != 1 && !calls.back().hit && prompt.size() > 300;  // [B,Q] is about 160 characters here, [A',B,Q] about 420
        if (measured_cold && colds++ < 2) c.record.stamps.first_token_ms = 10.2;
        return c;
    }
};

Settings sequential(int cap, double budget_s) {
    Settings s = quick(10, 0);
    s.gate.confidence = 0.95;
    s.hit_miss.max_trials = cap;
    s.hit_miss.time_budget_s = budget_s;
    return s;
}

}  // namespace

TEST_CASE("protocol: while undecided, rounds are added one at a time up to the cap and the budget",
          "[protocol][sequential]") {
    SECTION("decided once enough rounds outvote the early ones") {
        EarlyFastCold engine;
        engine.warmup_calls = 0;
        const PhaseResult r = run_phase(engine, sequential(40, 0), phase1());
        INFO(r.verdict.reason);
        CHECK(engine.colds > 2);
        CHECK(r.verdict.outcome == Outcome::pass);
        CHECK(r.verdict.rounds > 10);
        CHECK(r.verdict.rounds < 40);
        CHECK(r.trials.size() == static_cast<std::size_t>(3 * r.verdict.rounds));
        CHECK_THAT(r.verdict.rounds_reason, Catch::Contains("added one at a time while the interval straddled"));
        CHECK(r.verdict.cache.look_confidence > 0.975);  // a later look: a smaller share of alpha
    }
    SECTION("the cap") {
        EarlyFastCold engine;
        engine.warmup_calls = 0;
        const PhaseResult r = run_phase(engine, sequential(12, 0), phase1());
        CHECK(r.verdict.outcome == Outcome::indeterminate);
        CHECK(r.verdict.rounds == 12);
        CHECK_THAT(r.verdict.rounds_reason, Catch::Contains("undecided at the cap of 12 rounds"));
    }
    SECTION("the time budget") {
        EarlyFastCold engine;
        engine.warmup_calls = 0;
        const PhaseResult r = run_phase(engine, sequential(40, 1e-6), phase1());
        CHECK(r.verdict.rounds == 10);  // never fewer than configured
        CHECK_THAT(r.verdict.rounds_reason, Catch::Contains("time budget ran out"));
    }
}

TEST_CASE("record_phase: the results file after every trial, the final result, and its headline", "[protocol][run_record]") {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("kvgate_record_phase_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    const auto path = dir / "results_phase1.json";
    ScriptedEngine engine;
    engine.fail_at = 9;  // a fault mid-run: what came before it is recorded
    std::ostringstream progress;
    const PhaseResult r = record_phase(engine, quick(3, 1), phase1(), path, progress);
    CHECK(r.fault);
    CHECK(r.trials.size() == 4);
    const PhaseResult back = read_results_file(path);
    CHECK(back.trials.size() == r.trials.size());
    CHECK(back.verdict.outcome == r.verdict.outcome);
    CHECK(back.verdict.reason == r.verdict.reason);
    std::size_t lines = 0;
    for (char c : progress.str()) lines += c == '\n';
    CHECK(lines == r.trials.size());
    const RunHeadline h = phase_headline(r);
    CHECK(h.outcome == r.verdict.outcome);
    CHECK(h.reason == r.verdict.reason);
    CHECK(h.fix == r.verdict.fix);
    REQUIRE(h.details.size() == 1);
    CHECK_THAT(h.details.front(), Catch::Contains("hit median") && Catch::Contains("rounds"));
    std::filesystem::remove_all(dir);
}
