// Experiment 2's protocol against a scripted engine whose prefix cache follows the mechanism (whole
// blocks of earlier prompts, never the last token) and whose TTFT is a known cost line: the sweep's
// cells must agree with the prediction and the fit must recover the line; an engine whose cache
// misbehaves must have its cells flagged and left out of the fit; the results file reads back.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "kvgate/experiment/curve.hpp"

using namespace kvgate;

namespace {

CurveFile read_curve_back(const std::filesystem::path& path) {
    std::ifstream in(path);
    return parse_curve_json(nlohmann::json::parse(in), path.string());
}

class ScriptedChatEngine : public Engine {
public:
    static constexpr int kBlock = 16;
    static constexpr double kFixedMs = 20, kMsPerToken = 0.5;
    bool forget_cache = false;  // a cache that never keeps anything: every cell must be flagged

    EngineInfo describe() override {
        EngineInfo i;
        i.name = "scripted";
        i.block_size = kBlock;
        return i;
    }
    std::optional<int> count_tokens(const std::string&) override { return std::nullopt; }
    Completion complete(const std::string&, int) override { return {}; }
    CounterSnapshot prefix_cache_counters() override { return {true, 0, 0}; }
    bool takes_messages() const override { return true; }

    // A role header token, then one token per word.
    std::optional<std::vector<int>> message_token_ids(const std::vector<Message>& messages, bool) override {
        std::vector<int> ids;
        for (const auto& m : messages) {
            ids.push_back(static_cast<int>(m.role) + 1);
            std::size_t from = 0;
            while (from < m.content.size()) {
                const auto to = std::min(m.content.find(' ', from), m.content.size());
                if (to > from) ids.push_back(static_cast<int>(std::hash<std::string>{}(m.content.substr(from, to - from)) % 50000) + 10);
                from = to + 1;
            }
        }
        return ids;
    }

    Completion complete_messages(const std::vector<Message>& messages, int) override {
        const auto ids = *message_token_ids(messages, true);
        const int n = static_cast<int>(ids.size());
        int cached = 0;
        while (cached + kBlock <= n - 1 && cache_.count(key(ids, cached + kBlock))) cached += kBlock;
        if (!forget_cache)
            for (int end = kBlock; end <= n; end += kBlock) cache_.insert(key(ids, end));
        Completion c;
        // A little deterministic noise so the fit has residuals.
        const double noise = (++requests_ % 3 - 1) * 0.25;
        c.record.stamps.first_token_ms = kFixedMs + kMsPerToken * (n - cached) + noise;
        c.record.usage.prompt_tokens = n;
        c.record.usage.cached_tokens = cached;
        c.record.usage.completion_tokens = 1;
        return c;
    }

private:
    static std::string key(const std::vector<int>& ids, int end) {
        std::string k;
        for (int i = 0; i < end; ++i) k += std::to_string(ids[static_cast<std::size_t>(i)]) + ",";
        return k;
    }
    std::set<std::string> cache_;
    int requests_ = 0;
};

Settings small_sweep() {
    Settings s;
    s.curve.settle_ms = 0;
    s.seed = 7;
    s.curve.contexts = "256,512";
    s.curve.positions = "0,0.5,1";
    s.curve.trials = 2;
    return s;
}

}  // namespace

TEST_CASE("curve: every cell's reuse matches the prediction and the fit recovers the cost line", "[curve]") {
    ScriptedChatEngine engine;
    int progress = 0;
    const auto r = run_curve(engine, small_sweep(), [&](const CurveResult&, const CurveCell&, int total) {
        ++progress;
        CHECK(total == 2 * (2 + 3 * 3 * 2));
    });
    REQUIRE(r.complete);
    CHECK(progress == static_cast<int>(r.cells.size()));
    REQUIRE(r.cells.size() == 2u * (2 + 3 * 3 * 2));
    bool some_reuse = false, some_recompute_after_reuse = false;
    for (const auto& c : r.cells) {
        INFO(edit_kind_name(c.kind) << " at " << c.position << ", context " << c.context_tokens << ": " << c.flag);
        CHECK(c.flag.empty());
        CHECK(c.ids_exact);
        CHECK(c.predicted_reuse % ScriptedChatEngine::kBlock == 0);
        CHECK(c.predicted_reuse + c.predicted_recompute == c.measured_tokens);
        if (c.kind == EditKind::none) CHECK(c.predicted_reuse >= c.warm_tokens - ScriptedChatEngine::kBlock);
        if (c.kind == EditKind::truncate) CHECK(c.predicted_reuse < 64 + ScriptedChatEngine::kBlock);
        some_reuse = some_reuse || c.predicted_reuse > 0;
        some_recompute_after_reuse = some_recompute_after_reuse || (c.kind == EditKind::remove && c.predicted_reuse > 0);
    }
    CHECK(some_reuse);
    CHECK(some_recompute_after_reuse);

    const auto a = analyse_curve(r.cells, 0.95);
    REQUIRE(a.fit.ok());
    CHECK(a.flagged == 0);
    CHECK(a.fit.ms_per_token.covers(ScriptedChatEngine::kMsPerToken));
    CHECK(a.fit.ms_per_token.estimate == Approx(ScriptedChatEngine::kMsPerToken).margin(0.01));
    CHECK(a.fit.fixed_ms.estimate == Approx(ScriptedChatEngine::kFixedMs).margin(1));
    REQUIRE(a.per_token);
    CHECK(a.per_token->low > 0);
    CHECK(curve_verdict(r, a).outcome == Outcome::pass);

    // The results file holds the raw cells and reads back to the same analysis.
    const auto j = curve_result_json(r);
    const CurveFile f = parse_curve_json(nlohmann::json::parse(j.dump()), "test");
    REQUIRE(f.cells.size() == r.cells.size());
    CHECK(f.block_size == ScriptedChatEngine::kBlock);
    CHECK(f.cells.back().ttft_ms == r.cells.back().ttft_ms);
    CHECK(f.cells.back().kind == r.cells.back().kind);
    const auto again = analyse_curve(f.cells, f.confidence);
    CHECK(again.fit.ms_per_token.estimate == a.fit.ms_per_token.estimate);
    CHECK(j.at("analysis").at("fit").at("a_ms_per_token").at("estimate") == a.fit.ms_per_token.estimate);
    // The report reads the analysis the run recorded, whole: it writes back to the same JSON.
    CHECK(curve_analysis_json(f.analysis) == j.at("analysis"));
    REQUIRE(f.analysis.per_token);
    CHECK(linear_combination(f.analysis.fit, 1, 100, 0).high == linear_combination(a.fit, 1, 100, 0).high);
    // A file from before the covariance was recorded: its cells give the analysis.
    auto older = nlohmann::json::parse(j.dump());
    older["analysis"]["fit"].erase("covariance");
    CHECK(curve_analysis_json(parse_curve_json(older, "older").analysis) == j.at("analysis"));

    // The user's question, from the fit: an early removal recomputes more than a late one.
    const auto early = removal_cost(a.fit, f.shape, 1000, 0.25, f.block_size);
    const auto late = removal_cost(a.fit, f.shape, 1000, 0.90, f.block_size);
    CHECK(early.recompute_tokens > late.recompute_tokens);
    CHECK(early.ttft.ttft_ms > late.ttft.ttft_ms);
}

TEST_CASE("curve: cells whose server evidence disagrees are flagged with a cause and not fitted", "[curve]") {
    ScriptedChatEngine engine;
    engine.forget_cache = true;
    const auto r = run_curve(engine, small_sweep());
    int flagged = 0;
    for (const auto& c : r.cells)
        if (c.predicted_reuse > 0) {
            CHECK(c.flag.find("less reused than predicted") != std::string::npos);
            ++flagged;
        } else {
            CHECK(c.flag.empty());
        }
    REQUIRE(flagged > 0);
    const auto a = analyse_curve(r.cells, 0.95);
    CHECK(a.flagged == flagged);
    CHECK(a.fit.n == static_cast<int>(r.cells.size()) - flagged);
    const auto verdict = curve_verdict(r, a);
    CHECK(verdict.outcome == Outcome::fail);
    CHECK_THAT(verdict.reason, Catch::Contains(std::to_string(flagged) + " of ") && Catch::Contains("not the predicted reuse"));
}

TEST_CASE("curve: one pass rule: a fault is an error, a cost per token that may be zero decides nothing", "[curve]") {
    ScriptedChatEngine engine;
    CurveResult r = run_curve(engine, small_sweep());
    CurveAnalysis a = analyse_curve(r.cells, 0.95);
    REQUIRE(curve_verdict(r, a).outcome == Outcome::pass);
    CurveAnalysis flat = a;
    flat.per_token->low = -0.001;
    CHECK(curve_verdict(r, flat).outcome == Outcome::indeterminate);
    CHECK_THAT(curve_verdict(r, flat).fix, Catch::Contains("--curve-trials"));
    r.fault = Fault{FaultKind::transport, FaultStage::stream, "the server went away"};
    CHECK(curve_verdict(r, a).outcome == Outcome::error);
    // The report reads the same rule back from the file: the fault, and a checkpoint that never finished.
    r.complete = false;
    const CurveFile faulted = parse_curve_json(curve_result_json(r), "test");
    CHECK(faulted.fault == "the server went away");
    CHECK(curve_verdict(faulted.fault, faulted.complete, a).outcome == Outcome::error);
    CHECK(curve_verdict("", false, a).outcome == Outcome::error);
    CHECK_THAT(curve_verdict("", false, a).reason, Catch::Contains("did not finish"));
}

TEST_CASE("record_curve: the results file after every cell and at the end, and the headline", "[curve][run_record]") {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("kvgate_record_curve_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    const auto path = dir / "results_curve.json";
    ScriptedChatEngine engine;
    std::ostringstream progress;
    const CurveResult r = record_curve(engine, small_sweep(), path, progress);
    const CurveFile back = read_curve_back(path);
    CHECK(back.complete);
    CHECK(back.cells.size() == r.cells.size());
    std::size_t lines = 0;
    for (char c : progress.str()) lines += c == '\n';
    CHECK(lines == r.cells.size());
    const RunHeadline h = curve_headline(r);
    CHECK(h.outcome == Outcome::pass);
    CHECK(h.outcome == curve_verdict(back.fault, back.complete, analyse_curve(back.cells, back.confidence)).outcome);
    REQUIRE(h.details.size() == 3);
    CHECK_THAT(h.details[1], Catch::StartsWith("fit: t0"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("curve: an engine without chat messages and bad sweep settings are refused with the fix", "[curve]") {
    struct PromptOnly : ScriptedChatEngine {
        bool takes_messages() const override { return false; }
    } prompt_only;
    CHECK_THROWS_WITH(run_curve(prompt_only, small_sweep()), Catch::Contains("--endpoint chat"));
    ScriptedChatEngine engine;
    auto s = small_sweep();
    s.curve.positions = "0,0.01";  // both resolve to the first exchange
    CHECK_THROWS_WITH(run_curve(engine, s), Catch::Contains("use fewer positions"));
    Settings parsed;
    CHECK_THROWS_WITH(apply_flags(parsed, {"--curve-contexts", "384,x"}), Catch::Contains("KVGATE_CURVE_CONTEXTS"));
    CHECK_THROWS_WITH(apply_flags(parsed, {"--curve-positions", "0,1.5"}), Catch::Contains("KVGATE_CURVE_POSITIONS"));
    apply_flags(parsed, {"--curve-contexts", "400,800,1200"});
    CHECK(sweep_spec(parsed).context_tokens == std::vector<int>{400, 800, 1200});
}

TEST_CASE("curve: Experiment 1's arms are predicted from their sizes", "[curve]") {
    std::vector<CostObservation> obs;
    for (int r = 16; r <= 512; r += 16) obs.push_back({double(r), attended_context(0, r), 20 + 0.5 * r + (r % 32 ? 0.3 : -0.3)});
    const auto fit = fit_cost_model(obs);
    REQUIRE(fit.ok());
    PhaseResult p1;
    p1.phase = phase_descriptor("phase1");
    for (int i = 0; i < 4; ++i) {
        Trial t;
        t.arm = i % 2 ? Arm::miss : Arm::hit;
        t.measured.usage.prompt_tokens = i % 2 ? 288 : 800;
        t.measured.usage.cached_tokens = i % 2 ? 0 : 768;
        t.ttft_ms = 20 + 0.5 * (t.measured.usage.prompt_tokens - t.measured.usage.cached_tokens);
        p1.trials.push_back(t);
    }
    const auto arms = predict_experiment1(fit, p1);
    REQUIRE(arms.size() == 2);
    CHECK(arms[0].arm == Arm::hit);
    CHECK(arms[0].recompute_tokens == 32);
    CHECK(arms[1].recompute_tokens == 288);
    for (const auto& a : arms) {
        CHECK(a.within());
        CHECK(a.predicted.ttft_ms == Approx(a.measured_mean_ms).margin(0.5));
    }
}
