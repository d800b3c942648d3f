// llama.cpp's server itself: a repeated prompt served from the slot's cache, as the server counts it.
// Its phase-1 gate and negative control are the served-phase tests (gpu_served_phase.cpp).
#include "gpu_support.hpp"

using namespace kvgate;

TEST_CASE("llama.cpp: a repeated prompt is served from the slot's cache as the server counts it",
          "[gpu][llamacpp][engine]") {
    const auto settings = testing::http_settings("llamacpp", EngineKind::llamacpp_http);
    const auto engine = make_engine(settings);
    PromptBuilder builder(std::random_device{}() | 1ULL, [&](const std::string& t) { return engine->count_tokens(t); });
    const std::string prompt = builder.build(0, 600, 16, 8).hit();
    const auto counted = engine->count_tokens(prompt);
    REQUIRE(counted);
    const auto before = engine->prefix_cache_counters();
    REQUIRE(before.available);
    RequestRecord second;
    for (int i = 0; i < 2; ++i) {
        const Completion c = engine->complete(prompt, 4);
        INFO("request " << i + 1 << ": " << (c.fault ? c.fault->message : "ok"));
        REQUIRE_FALSE(c.fault);
        CHECK(c.record.usage.completion_tokens == 4);    // ignore_eos: a fixed output length
        CHECK(c.record.usage.prompt_tokens == *counted);  // /apply-template + /tokenize = what it served
        CHECK(c.record.engine_ttft_ms);                   // timings.prompt_ms
        second = c.record;
    }
    const auto deltas = counter_deltas(before, engine->prefix_cache_counters());
    INFO("cached tokens of the repeat " << second.usage.cached_tokens << " of " << *counted << "; counters hits +"
                                        << deltas.hits << " of queries +" << deltas.queries);
    CHECK(second.usage.cached_tokens == *counted - 1);  // single-token granularity; the last is recomputed
    CHECK(deltas.hits == *counted - 1);
    CHECK(deltas.queries == 2 * *counted);
}
