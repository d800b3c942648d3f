#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "kvgate/experiment/verdict.hpp"

using namespace kvgate;

namespace {

// Rounds of hit, miss and cold TTFTs (cold: the miss's timings unless given; none: `two_arms`), with the
// cached tokens the server reported (cold requests report the miss's). Fewer than 8 rounds given are
// repeated to 8: the sign test needs 7 at the first look's 97.5 % to decide at all.
PhaseResult run_of(std::vector<double> hit, std::vector<double> miss, int hit_cached = 768, int miss_cached = 0,
                   std::vector<double> cold = {}, bool two_arms = false) {
    if (cold.empty()) cold = miss;
    for (std::size_t i = 0, given = hit.size(); hit.size() < 8; ++i) {
        hit.push_back(hit[i % given]);
        miss.push_back(miss[i % given]);
        cold.push_back(cold[i % given]);
    }
    PhaseResult r;
    r.engine.block_size = 128;
    for (std::size_t i = 0; i < hit.size(); ++i)
        for (Arm arm : all_arms) {
            if (two_arms && arm == Arm::cold) continue;
            Trial t;
            t.index = static_cast<int>(r.trials.size());
            t.arm = arm;
            t.ttft_ms = arm == Arm::hit ? hit[i] : arm == Arm::miss ? miss[i] : cold[i];
            t.measured.stamps.first_token_ms = t.ttft_ms;
            t.throughput = 10;
            t.measured.usage = {arm == Arm::miss ? 288 : 800, 50, arm == Arm::hit ? hit_cached : miss_cached};
            r.trials.push_back(t);
        }
    return r;
}

// A GPU-like engine (16-token blocks) behind a chat template that adds 20 tokens before the
// content and 5 after it (a Llama 3 / Qwen system header is longer than a block). Sizes as the
// protocol's defaults: A 512, B 256, Q 32 content tokens.
PhaseResult templated_run(int hit_cached, int miss_cached) {
    PhaseResult r = run_of({100, 105, 98, 102}, {300, 310, 290, 305}, hit_cached, miss_cached);
    r.engine.block_size = 16;
    r.engine.template_shape = TemplateShape{20, 5};
    for (auto& t : r.trials) {
        t.warm_prompt_tokens_expected = 768;
        t.warm.usage.prompt_tokens = 20 + 768 + 5;
        t.prompt_tokens_expected = (t.arm == Arm::miss ? 256 : 768) + 32;
        t.measured.usage.prompt_tokens = 20 + t.prompt_tokens_expected + 5;
    }
    return r;
}

}  // namespace

TEST_CASE("a miss that reuses only the chat template's shared blocks is no contamination", "[verdict][template]") {
    auto r = templated_run(784, 16);  // the template's 20 tokens fill one 16-token block
    decide(r, 10, 0.95);
    INFO(r.verdict.reason);
    CHECK(r.verdict.outcome == Outcome::pass);
    CHECK_THAT(r.verdict.evidence, Catch::Contains("template prefix 20 and suffix 5 tokens"));
}

TEST_CASE("a miss that reuses more than the template explains is contamination", "[verdict][template]") {
    auto r = templated_run(784, 32);
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::unverified);
    CHECK_THAT(r.verdict.reason, Catch::Contains("up to 32 cached tokens; the template explains 16"));
}

TEST_CASE("a hit that reuses only the template's prefix fails: it must reuse the warm prompt's whole blocks",
          "[verdict][template]") {
    auto r = templated_run(16, 16);  // > 0 cached, but only the template's block
    decide(r, 10, 0.95);
    INFO(r.verdict.reason);
    CHECK(r.verdict.outcome == Outcome::fail);
    // warm prompt 793 tokens less the 5-token suffix = 788 shared: 49 whole blocks = 784
    CHECK_THAT(r.verdict.reason, Catch::Contains("the warm prompt's whole blocks are 784"));
    auto short_by_a_block = templated_run(768, 16);
    decide(short_by_a_block, 10, 0.95);
    CHECK(short_by_a_block.verdict.outcome == Outcome::fail);
}

TEST_CASE("without the template's shape a hit must reuse more than a miss may", "[verdict][template]") {
    auto r = templated_run(16, 0);
    r.engine.template_shape = TemplateShape{};  // the engine could not render: less than a block may be a miss's
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::pass);
    CHECK_THAT(r.verdict.evidence, Catch::Contains("the whole-block rule needs both"));
    auto nothing = templated_run(15, 0);
    nothing.engine.template_shape = TemplateShape{};
    decide(nothing, 10, 0.95);
    CHECK(nothing.verdict.outcome == Outcome::fail);
}

TEST_CASE("pairs with a TTFT that is not a positive number are counted, and the verdict says so", "[verdict]") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (double bad : {0.0, -5.0, nan}) {
        auto r = run_of({100, 105, 98, bad}, {300, 310, 290, 305});
        decide(r, 10, 0.95);
        INFO("bad TTFT " << bad);
        CHECK(r.verdict.outcome == Outcome::error);
        CHECK_THAT(r.verdict.reason, Catch::Contains("2 of 8 rounds have a TTFT that is not a positive number"));
    }
}

TEST_CASE("at threshold 0 a ratio of exactly 1 does not pass", "[verdict]") {
    auto r = run_of({100, 100, 100, 100}, {100, 100, 100, 100});
    decide(r, 0, 0.95);
    CHECK(r.verdict.outcome != Outcome::pass);
}

TEST_CASE("two identical pairs (a zero-width interval) do not pass", "[verdict]") {
    auto r = run_of({100, 100}, {300, 300});
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::indeterminate);
    CHECK_THAT(r.verdict.reason, Catch::Contains("zero width"));
}

TEST_CASE("an arm without measured trials has unknown statistics, not zeros", "[verdict]") {
    PhaseResult r;
    decide(r, 10, 0.95);
    CHECK(r.hit_stats.n == 0);
    CHECK(std::isnan(r.hit_stats.ttft_median));
    CHECK(std::isnan(r.miss_stats.ttft_mean));
    CHECK(std::isnan(r.ttft_degradation_pct));
}

TEST_CASE("a clear saving passes", "[verdict]") {
    auto r = run_of({100, 105, 98, 102}, {300, 310, 290, 305});
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::pass);
    CHECK(r.verdict.ratio == Approx(3.0).epsilon(0.05));
    CHECK(r.ttft_degradation_pct == Approx(200).epsilon(0.05));
    CHECK(r.hit_stats.n == 8);
    CHECK(r.hit_stats.cached_tokens_median == 768);
    CHECK(r.verdict.fix.empty());
}

TEST_CASE("no saving fails", "[verdict]") {
    auto r = run_of({100, 101, 99, 100}, {101, 100, 100, 99});
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::fail);
    CHECK_THAT(r.verdict.reason, Catch::Contains("is below the bar"));
}

TEST_CASE("noise around the threshold is indeterminate and names the fix", "[verdict]") {
    auto r = run_of({100, 100, 100}, {100, 125, 105});
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::indeterminate);
    CHECK_THAT(r.verdict.fix, Catch::Contains("more rounds") && Catch::Contains("--max-trials"));
}

TEST_CASE("a hit arm with nothing cached fails, whatever the timings", "[verdict]") {
    auto r = run_of({100, 105, 98}, {300, 310, 290}, /*hit_cached=*/0);
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::fail);
    CHECK_THAT(r.verdict.reason, Catch::Contains("hit-arm requests reused too little (fewest 0 cached tokens"));
}

TEST_CASE("a miss arm served from cache makes the run unverified, never a pass", "[verdict]") {
    auto r = run_of({100, 105, 98}, {300, 310, 290}, 768, /*miss_cached=*/256);
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::unverified);
}

TEST_CASE("less than a block cached on a miss is no evidence against it", "[verdict]") {
    auto r = run_of({100, 105, 98}, {300, 310, 290}, 768, 100);
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::pass);
}

TEST_CASE("without cache evidence the verdict rests on timing and says so", "[verdict]") {
    auto r = run_of({100, 105, 98}, {300, 310, 290}, -1, -1);
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::pass);
    CHECK_THAT(r.verdict.evidence, Catch::Contains("timing only"));
    CHECK(r.hit_stats.cached_tokens_median == -1);
}

TEST_CASE("Prometheus counters that did not move fail a run without per-request evidence", "[verdict]") {
    auto r = run_of({100, 105, 98}, {300, 310, 290}, -1, -1);
    r.counters = {true, 5000, 0};
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::fail);
}

TEST_CASE("a fault is an error verdict that keeps the completed trials' statistics", "[verdict]") {
    auto r = run_of({100, 105}, {300, 310});
    r.fault = Fault{FaultKind::closed_mid_stream, FaultStage::stream, "gone", 4, FaultRequest::measured};
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::error);
    CHECK_THAT(r.verdict.reason, Catch::Contains("closed_mid_stream"));
    CHECK(r.hit_stats.n == 8);
}

TEST_CASE("warm-up trials are not counted", "[verdict]") {
    auto r = run_of({5000, 100, 105, 98, 101, 99, 104, 102, 100}, {100, 300, 310, 290, 305, 300, 295, 302, 301});
    r.trials[0].warmup = r.trials[1].warmup = r.trials[2].warmup = true;  // the first round
    decide(r, 10, 0.95);
    CHECK(r.hit_stats.n == 8);
    CHECK(r.verdict.outcome == Outcome::pass);
}

TEST_CASE("a miss that reuses B by shifted chunks is reported as such, not as contamination", "[verdict]") {
    // llama.cpp with n_cache_reuse 32: [B,Q] after [A,B] reuses B (256 of 290 tokens, block size 1).
    auto shifted = [](std::vector<double> miss) {
        auto r = run_of({100, 105, 98, 101}, std::move(miss), 767, 256);
        r.phase.engine = EngineKind::llamacpp_http;
        r.engine.block_size = 1;
        r.engine.shifted_chunk_reuse = 32;
        for (auto& t : r.trials)
            if (t.arm != Arm::hit) t.measured.usage.prompt_tokens = 290;
        return r;
    };
    auto small = shifted({101, 100, 102, 100});
    decide(small, 10, 0.95);
    CHECK(small.verdict.outcome == Outcome::fail);  // the timing decides, as for any engine
    CHECK_THAT(small.verdict.evidence, Catch::Contains("shifted-chunk reuse (--cache-reuse 32) in 16 of 16 miss and cold requests"));
    CHECK_THAT(small.verdict.reason, Catch::Contains("median of 256 of 290 prompt tokens"));
    CHECK_THAT(small.verdict.reason, Catch::Contains("is below the bar"));

    auto large = shifted({300, 310, 290, 305});
    decide(large, 10, 0.95);
    CHECK(large.verdict.outcome == Outcome::pass);
    CHECK_THAT(large.verdict.reason, Catch::StartsWith("shifted-chunk reuse"));

    // The same counts where the engine shifts nothing are a contaminated miss.
    auto plain = shifted({300, 310, 290, 305});
    plain.engine.shifted_chunk_reuse = 0;
    decide(plain, 10, 0.95);
    CHECK(plain.verdict.outcome == Outcome::unverified);
    CHECK_THAT(plain.verdict.evidence, !Catch::Contains("shifted"));
}

TEST_CASE("misses waiting outside the engine's prompt time are said to be no prefill saving", "[verdict]") {
    // Hits: 4 ms of which 3.4 in the engine; misses: 28 ms of which 4.5 in the engine (a host cache copy).
    auto r = run_of({4.0, 4.1, 3.9, 4.0}, {28, 27, 29, 28});
    r.phase.engine = EngineKind::llamacpp_http;
    for (Trial& t : r.trials) t.measured.engine_ttft_ms = t.arm == Arm::hit ? t.ttft_ms - 0.6 : 4.5;
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::pass);
    CHECK_THAT(r.verdict.reason, Catch::Contains("not prefill") && Catch::Contains("23.50 ms outside") &&
                                     Catch::Contains("--cache-ram"));
    CHECK_THAT(r.verdict.fix, Catch::Contains("--cache-ram 0"));
    // The advice is the engine's: on vLLM the same numbers draw the warning without llama-server's flags.
    r.phase.engine = EngineKind::vllm_http;
    decide(r, 10, 0.95);
    CHECK_THAT(r.verdict.reason, Catch::Contains("not prefill") && !Catch::Contains("llama-server"));
    CHECK_THAT(r.verdict.fix, Catch::Contains("prefill alone") && !Catch::Contains("--cache-ram"));
}

TEST_CASE("a small saving made in the engine's prompt time draws no outside-prefill warning", "[verdict]") {
    // The H200 at the seed's sizes: a ~1 ms saving, both arms ~0.6-0.9 ms outside the engine.
    auto r = run_of({4.1, 4.2, 4.0, 4.1, 4.2}, {5.0, 5.1, 4.9, 5.2, 5.0});
    for (Trial& t : r.trials) t.measured.engine_ttft_ms = t.ttft_ms - (t.arm == Arm::hit ? 0.6 : 0.9);
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::pass);
    CHECK_THAT(r.verdict.reason, !Catch::Contains("not prefill"));
    CHECK(r.verdict.fix.empty());
    // Without the engine's own time on every trial there is nothing to compare.
    r.trials.front().measured.engine_ttft_ms.reset();
    CHECK_FALSE(outside_engine_ms(r.measured(Arm::hit)));
}

namespace {

// A fleet of two: every measured trial's warm-up on replica 0, the hit-arm queries on `hit_query`
// (the first `moved` of them on replica 1 instead), the miss-arm queries on replica 0.
PhaseResult fleet_run(int moved, bool place = true) {
    auto r = run_of({100, 105, 98, 102}, {300, 310, 290, 305});
    r.phase.engine = EngineKind::vllm_fleet;
    r.engine.replica_urls = {"http://127.0.0.1:1", "http://127.0.0.1:2"};
    r.engine.router_policy = "round_robin";
    int hit = 0;
    for (auto& t : r.trials) {
        Placement p;
        p.outcome = PlacementOutcome::served;
        p.replica = 0;
        t.warm.placement = p;
        if (t.arm == Arm::hit && hit++ < moved) p.replica = 1;
        if (place) t.measured.placement = p;
    }
    return r;
}

}  // namespace

TEST_CASE("a fleet: a hit-arm query on another replica than its warm-up fails, with the routing named",
          "[verdict][fleet]") {
    auto r = fleet_run(3);
    decide(r, 10, 0.95);  // timings alone would pass
    CHECK(r.verdict.outcome == Outcome::fail);
    CHECK_THAT(r.verdict.reason, Catch::StartsWith("3 of 8 queries went to another replica than their warm-up") &&
                                     Catch::Contains("policy round_robin") && Catch::Contains("by chance"));
    CHECK_THAT(r.verdict.fix, Catch::Contains("cache_aware"));
}

TEST_CASE("a fleet: queries that cannot be placed leave locality unverified", "[verdict][fleet]") {
    auto r = fleet_run(0, false);
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::unverified);
    CHECK_THAT(r.verdict.reason, Catch::Contains("8 of 8 queries could not be placed"));
}

TEST_CASE("a fleet: every query on its warm-up's replica leaves the verdict to evidence and timing",
          "[verdict][fleet]") {
    auto r = fleet_run(0);
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::pass);
    const auto s = fleet_placement(r);
    REQUIRE(s);
    CHECK(s->same == 8);
    CHECK(s->per_replica[0].requests == 48);  // 24 measured trials, warm-up and query each
    CHECK_FALSE(fleet_placement(run_of({1, 2}, {3, 4})));  // a single server is no fleet
}

TEST_CASE("a saving the engine makes but hits give back outside it is named, and the engine's TTFT gates it",
          "[verdict]") {
    // The H200 at A 3000 tokens, llama-server: the engine's prompt time, hit ~5.6 ms, miss ~10.7 ms;
    // before it, hits ~10 ms and misses ~5 ms (the hit's 3000 more tokens to tokenize).
    auto r = run_of({15.5, 15.9, 15.2, 15.6, 15.8, 15.6, 15.6, 15.7}, {15.8, 15.4, 16.0, 15.7, 15.6, 15.7, 15.7, 15.6});
    for (Trial& t : r.trials) t.measured.engine_ttft_ms = t.ttft_ms - (t.arm == Arm::hit ? 10 : 5);
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome != Outcome::pass);
    CHECK_THAT(r.verdict.reason, Catch::Contains("the engine's own prompt time shows the saving (median hit 5.60 ms, "
                                                 "miss 10.70 ms") &&
                                     Catch::Contains("hits spend 5.00 ms more than misses outside it"));
    CHECK_THAT(r.verdict.fix, Catch::Contains("--ttft engine"));

    // The same trials gated on the engine's own time, as the protocol records them under KVGATE_TTFT=engine.
    PhaseResult engine_gated = r;
    engine_gated.settings.gate.ttft = TtftSource::engine;
    for (Trial& t : engine_gated.trials) t.ttft_ms = *t.measured.engine_ttft_ms;
    decide(engine_gated, 10, 0.95);
    CHECK(engine_gated.verdict.outcome == Outcome::pass);
    CHECK_THAT(engine_gated.verdict.method, Catch::Contains("the engine's own prompt time (KVGATE_TTFT=engine)"));
    CHECK_THAT(engine_gated.verdict.reason, !Catch::Contains("shows the saving"));
}

TEST_CASE("hits and misses spending the same outside the engine draw no hidden-saving note", "[verdict]") {
    auto r = run_of({15.5, 15.9, 15.2, 15.6, 15.8, 15.6, 15.6, 15.7}, {15.8, 15.4, 16.0, 15.7, 15.6, 15.7, 15.7, 15.6});
    for (Trial& t : r.trials) t.measured.engine_ttft_ms = t.ttft_ms - 5;
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome != Outcome::pass);
    CHECK_THAT(r.verdict.reason, !Catch::Contains("shows the saving"));
}

TEST_CASE("without the template's shape a cached system header is measured by the warm requests",
          "[verdict][template]") {
    // A 40-token system header, block 16, and a server without /tokenize: every prompt after the first
    // finds the header's two whole blocks cached, the misses too.
    auto r = templated_run(784, 32);
    r.engine.template_shape = TemplateShape{};
    for (std::size_t i = 0; i < r.trials.size(); ++i) r.trials[i].warm.usage.cached_tokens = i == 0 ? 0 : 32;
    decide(r, 10, 0.95);
    INFO(r.verdict.reason);
    CHECK(r.verdict.outcome == Outcome::pass);
    CHECK_THAT(r.verdict.evidence, Catch::Contains("as the warm requests of fresh content found it: 32 tokens"));

    auto served = templated_run(784, 48);  // a miss beyond what fresh warm prompts find: contamination
    served.engine.template_shape = TemplateShape{};
    for (std::size_t i = 0; i < served.trials.size(); ++i) served.trials[i].warm.usage.cached_tokens = i == 0 ? 0 : 32;
    decide(served, 10, 0.95);
    CHECK(served.verdict.outcome == Outcome::unverified);
    CHECK_THAT(served.verdict.reason, Catch::Contains("the template explains 32"));

    auto header_only = templated_run(32, 32);  // hits that reuse only the header still fail
    header_only.engine.template_shape = TemplateShape{};
    for (std::size_t i = 0; i < header_only.trials.size(); ++i)
        header_only.trials[i].warm.usage.cached_tokens = i == 0 ? 0 : 32;
    decide(header_only, 10, 0.95);
    CHECK(header_only.verdict.outcome == Outcome::fail);
}

TEST_CASE("counters that fell (a server restart) are no evidence that the cache served nothing", "[verdict]") {
    const CounterDeltas d = counter_deltas({true, 5000, 3000}, {true, 1200, 0});
    CHECK_FALSE(d.available);
    CHECK_THAT(d.unavailable_because, Catch::Contains("fell during the run") && Catch::Contains("restarted"));
    CHECK(counter_deltas({true, 5000, 3000}, {true, 9000, 3000}).available);

    auto r = run_of({100, 105, 98, 102}, {300, 310, 290, 305}, -1, -1);  // counters are the only evidence
    r.counters = d;
    decide(r, 10, 0.95);
    INFO(r.verdict.reason);
    CHECK(r.verdict.outcome == Outcome::pass);
    CHECK_THAT(r.verdict.evidence, Catch::Contains("timing only") && Catch::Contains("restarted"));
}

TEST_CASE("hits that found nothing name caching off where the server's counters show no lookups", "[verdict]") {
    auto r = run_of({300, 305, 298, 302}, {300, 310, 290, 305}, 0, 0);
    r.counters = {true, 0, 0, {}, {}};
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::fail);
    CHECK_THAT(r.verdict.reason, Catch::Contains("no prefix-cache lookups") && Catch::Contains("prefix caching is off"));
    CHECK_THAT(r.verdict.fix, Catch::Contains("turn prefix caching on") &&
                                  Catch::Contains("--no-enable-prefix-caching") && !Catch::Contains("cache_prompt"));
    r.phase.engine = EngineKind::llamacpp_http;  // each engine's own switch (its dialect's advice)
    decide(r, 10, 0.95);
    CHECK_THAT(r.verdict.fix, Catch::Contains("cache_prompt true") && !Catch::Contains("--no-enable-prefix-caching"));
    r.phase.engine = EngineKind::vllm_http;
    r.counters = {true, 8000, 0, {}, {}};  // looked up, found nothing: the cache, not the setting
    decide(r, 10, 0.95);
    CHECK_THAT(r.verdict.reason, Catch::Contains("prefix caching is on and the server looked up 8000 prompt tokens") &&
                                     Catch::Contains("evicted"));
    CHECK_THAT(r.verdict.fix, Catch::Contains("give the KV cache room") && Catch::Contains("--gpu-memory-utilization"));
    r.counters = {};  // no counters: the cache is named, no cause
    decide(r, 10, 0.95);
    CHECK_THAT(r.verdict.reason, Catch::Contains("the prefix cache did not serve the warmed prefix"));
}

TEST_CASE("stalls are named with their arm, and whether the engine's own TTFT shows them", "[verdict][stall]") {
    auto r = run_of({100, 105, 480, 102, 99, 101}, {300, 310, 290, 305, 2000, 301}, 768, 0,
                    {320, 330, 310, 325, 315, 321});
    for (auto& t : r.trials) t.measured.engine_ttft_ms = t.ttft_ms * 0.8;
    r.trials[13].measured.engine_ttft_ms = 240;  // the 2000 ms miss: the engine was quick, the client was not
    decide(r, 10, 0.95);
    INFO(r.verdict.reason);
    CHECK_THAT(r.verdict.reason, Catch::Contains("2 stall(s), requests over 3x their arm's median TTFT") &&
                                     Catch::Contains("trial 7 (cache_hit) 480.0 ms against its arm's median 101.5 ms: "
                                                     "the engine's own TTFT shows it, a server stall") &&
                                     Catch::Contains("trial 14 (cache_miss) 2000.0 ms") &&
                                     Catch::Contains("does not, so the client or the network"));
    auto quiet = run_of({100, 105, 98, 102}, {300, 310, 290, 305});
    decide(quiet, 10, 0.95);
    CHECK_THAT(quiet.verdict.reason, !Catch::Contains("stall"));
}

TEST_CASE("the seed's miss no slower than the hit while cold is: the cache works, and the sizes that show A's removal",
          "[verdict][cold]") {
    // As on an H200 at 3000/500/32: the hit carries A's tokens through the server, so [B,Q] is as fast.
    auto r = run_of({60, 62, 61, 59, 63, 60, 61, 62, 60, 61}, {42, 41, 43, 42, 40, 44, 41, 42, 43, 42}, 768, 0,
                    {109, 110, 108, 111, 107, 109, 110, 108, 112, 109});
    decide(r, 10, 0.95);
    INFO(r.verdict.reason);
    CHECK(r.verdict.outcome == Outcome::fail);
    CHECK(r.verdict.cache.outcome == Outcome::pass);
    CHECK(r.verdict.invalidation.outcome == Outcome::fail);
    CHECK(r.verdict.ratio == Approx(r.verdict.invalidation.ratio));  // the seed's keys keep miss/hit
    CHECK_THAT(r.verdict.reason, Catch::Contains("the cache works, and removing A costs little at these sizes") &&
                                     Catch::Contains("us per cached token") &&
                                     Catch::Contains("removing A shows (miss/hit clears the bar) from B ="));
    CHECK(r.verdict.saving_per_cached_token_ms > 0);
    CHECK(r.verdict.cache.look_confidence == Approx(0.975));  // the first look's half of alpha
}

TEST_CASE("a hit faster than the shorter miss but not than an equal-length cold prompt fails on the cache's contrast",
          "[verdict][cold]") {
    auto r = run_of({100, 101, 99, 100, 100, 101}, {300, 310, 290, 305, 300, 302}, 768, 0,
                    {101, 100, 102, 99, 100, 101});
    decide(r, 10, 0.95);
    INFO(r.verdict.reason);
    CHECK(r.verdict.outcome == Outcome::fail);
    CHECK(r.verdict.cache.outcome == Outcome::fail);
    CHECK_THAT(r.verdict.reason, Catch::Contains("mostly its shorter prompt"));
}

TEST_CASE("a cold request served from cache makes the run unverified and is named", "[verdict][cold]") {
    auto r = run_of({100, 105, 98}, {300, 310, 290}, 768, 0);
    for (auto& t : r.trials)
        if (t.arm == Arm::cold) t.measured.usage.cached_tokens = 512;
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::unverified);
    CHECK_THAT(r.verdict.reason, Catch::Contains("8 of 16 miss and cold requests were served from cache (the first a cold"));
}

TEST_CASE("a result without a cold arm decides on miss/hit alone and says so", "[verdict][cold]") {
    auto r = run_of({100, 105, 98, 102}, {300, 310, 290, 305}, 768, 0, {}, /*two_arms=*/true);
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::pass);
    CHECK_THAT(r.verdict.reason, Catch::Contains("no cold arm measured"));
}

TEST_CASE("one stalled hit does not turn a healthy run red, and is named", "[verdict][cold]") {
    std::vector<double> hit = {65, 66, 64, 65, 67, 64, 66, 65, 64, 66};
    hit[4] = 5 * 65;  // a server stall of five times the arm's median
    auto r = run_of(hit, {190, 185, 195, 192, 188, 190, 191, 189, 193, 190}, 768, 0,
                    {200, 205, 198, 202, 199, 203, 201, 200, 204, 199});
    decide(r, 10, 0.95);
    INFO(r.verdict.reason);
    CHECK(r.verdict.outcome == Outcome::pass);
    CHECK_THAT(r.verdict.reason, Catch::Contains("1 stall(s)") && Catch::Contains("trial 13 (cache_hit)"));
}

TEST_CASE("a cached path that is slow every time fails, however many rounds", "[verdict][cold]") {
    std::vector<double> hit, miss, cold;
    for (int i = 0; i < 40; ++i) {
        hit.push_back(190 + i % 3);
        miss.push_back(180 + i % 4);
        cold.push_back(192 + i % 5);
    }
    auto r = run_of(hit, miss, 768, 0, cold);
    r.settings.hit_miss.trials = 10;
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::fail);
    CHECK(r.verdict.cache.outcome == Outcome::fail);
    CHECK(r.verdict.cache.look_confidence == Approx(1 - 0.025 * 900 / 9455));  // the last look's share of alpha
}

TEST_CASE("block rounding that hides the saving is named in the reason", "[verdict][cold]") {
    auto r = run_of({100, 101, 99, 100}, {100, 101, 100, 99}, 768, 0, {101, 100, 99, 100});
    r.block_rounding = "block size 512 keeps 256 of the warm prompt's 768 tokens from reuse";
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::fail);
    CHECK_THAT(r.verdict.reason, Catch::Contains("block rounding: block size 512"));
}

TEST_CASE("one round: the evidence can decide, the timing cannot", "[verdict]") {
    auto nothing_cached = run_of({100}, {300}, /*hit_cached=*/0);
    nothing_cached.trials.resize(3);  // the first round alone
    nothing_cached.engine.prefix_caching = false;
    decide(nothing_cached, 10, 0.95);
    CHECK(nothing_cached.verdict.outcome == Outcome::fail);
    CHECK_THAT(nothing_cached.verdict.reason, Catch::Contains("prefix caching off"));
    auto healthy = run_of({100}, {300});
    healthy.trials.resize(3);
    decide(healthy, 10, 0.95);
    CHECK(healthy.verdict.outcome == Outcome::error);
    CHECK_THAT(healthy.verdict.reason, Catch::Contains("fewer than two complete rounds"));
}
