// The seed's trial loop against a scripted in-memory engine: the schedule (ABBA), what warm-ups
// are, what a fault keeps, when the observer is called, and trial numbers as people count them.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "kvgate/protocol.hpp"
#include "kvgate/report_markdown.hpp"
#include "kvgate/results_json.hpp"

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
    };
    std::vector<Call> calls;
    std::optional<std::size_t> fail_at;
    double warmup_ttft_ms = 999;  // the first pair's measured requests, to see whether stats count them
    int warmup_calls = 4;

    EngineInfo describe() override {
        EngineInfo info;
        info.name = "scripted";
        info.block_size = 1;
        return info;
    }
    std::optional<int> count_tokens(const std::string& prompt) override {
        return static_cast<int>(prompt.size() / 4);  // any stable count will do
    }
    CounterSnapshot prefix_cache_counters() override { return {true, queries_, hits_}; }

    Completion complete(const std::string& prompt, int max_tokens) override {
        Completion c;
        const bool warm = max_tokens == 1;
        const bool hit = !warm && !last_warm_.empty() && prompt.rfind(last_warm_, 0) == 0;
        const std::size_t call = calls.size();
        calls.push_back({warm, hit});
        if (fail_at && call == *fail_at) {
            c.fault = Fault{FaultKind::closed_mid_stream, FaultStage::stream, "scripted close"};
            return c;
        }
        const int tokens = count_tokens(prompt).value_or(0);
        const int cached = warm || !hit ? 0 : count_tokens(last_warm_).value_or(0);
        queries_ += tokens;
        hits_ += cached;
        if (warm) last_warm_ = prompt;
        const double ttft = warm ? 5 : static_cast<int>(call) < warmup_calls ? warmup_ttft_ms : hit ? 10 : 30;
        c.record.stamps.first_token_ms = ttft;
        c.record.stamps.done_ms = ttft + max_tokens;
        c.record.usage = {tokens, max_tokens, cached};
        return c;
    }

private:
    std::string last_warm_;
    double queries_ = 0, hits_ = 0;
};

Settings quick(int trials, int warmup) {
    Settings s;
    s.trials = trials;
    s.warmup = warmup;
    s.settle_ms = 0;
    s.context_a_tokens = 64;
    s.context_b_tokens = 32;
    s.query_tokens = 8;
    s.max_output_tokens = 5;
    s.seed = 42;
    return s;
}

const PhaseDescriptor& phase1() { return phase_descriptor("phase1"); }

}  // namespace

TEST_CASE("protocol: trials run in ABBA pairs, warm then measured, and the prompts are what the arm says",
          "[protocol]") {
    ScriptedEngine engine;
    const PhaseResult r = run_phase(engine, quick(3, 1), phase1());
    std::vector<Arm> arms;
    for (const auto& t : r.trials) arms.push_back(t.arm);
    CHECK(arms == std::vector<Arm>{Arm::hit, Arm::miss, Arm::miss, Arm::hit, Arm::hit, Arm::miss, Arm::miss, Arm::hit});
    REQUIRE(engine.calls.size() == 2 * r.trials.size());
    for (std::size_t i = 0; i < r.trials.size(); ++i) {
        INFO("trial " << r.trials[i].number());
        CHECK(engine.calls[2 * i].warm);
        CHECK_FALSE(engine.calls[2 * i + 1].warm);
        CHECK(engine.calls[2 * i + 1].hit == (r.trials[i].arm == Arm::hit));
        CHECK(r.trials[i].index == static_cast<int>(i));
    }
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
    REQUIRE(r.trials.size() == 6);
    CHECK(r.trials[0].warmup);
    CHECK(r.trials[1].warmup);
    CHECK(r.trials[0].ttft_ms == 999);  // measured...
    CHECK_FALSE(r.trials[2].warmup);
    CHECK(r.hit_stats.n == 2);  // ...but not counted
    CHECK(r.miss_stats.n == 2);
    CHECK(r.hit_stats.ttft_mean == 10);
    CHECK(r.miss_stats.ttft_mean == 30);
    CHECK(r.ttft_degradation_pct == Approx(200));
}

TEST_CASE("protocol: a fault stops the run, keeps the completed trials and names the trial from 1", "[protocol]") {
    ScriptedEngine engine;
    engine.fail_at = 7;  // trial 4's measured request (calls 0-1 are trial 1's)
    int observed = 0;
    std::vector<int> numbers;
    const PhaseResult r = run_phase(engine, quick(3, 1), phase1(), [&](const PhaseResult& partial, const Trial& t) {
        ++observed;
        numbers.push_back(t.number());
        CHECK(&partial.trials.back() == &t);
        CHECK(progress_line(partial, t).find("trial " + std::to_string(t.number()) + "/8") != std::string::npos);
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
    CHECK(r.fault->message.rfind("trial 4 (cache_hit), measured request, stage stream: scripted close", 0) == 0);
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

TEST_CASE("protocol: the observer is called once per trial, in order, with the result so far", "[protocol]") {
    ScriptedEngine engine;
    std::vector<std::size_t> sizes;
    const PhaseResult r = run_phase(engine, quick(2, 1), phase1(),
                                    [&](const PhaseResult& partial, const Trial&) { sizes.push_back(partial.trials.size()); });
    CHECK(sizes == std::vector<std::size_t>{1, 2, 3, 4, 5, 6});
    CHECK(r.trials.size() == 6);
}

TEST_CASE("protocol: an engine that can time only one output token has its run recorded so", "[protocol]") {
    struct OneToken : ScriptedEngine {
        int output_tokens(int) const override { return 1; }
    } engine;
    engine.warmup_calls = 0;
    const PhaseResult r = run_phase(engine, quick(2, 0), phase1());
    CHECK(r.settings.max_output_tokens == 1);
    // Every measured request asked for one token: the engine cannot tell warm from measured now.
    for (const auto& c : engine.calls) CHECK(c.warm);
}
