// The engine fixtures start a real vLLM that answers streamed chat completions and whose prefix
// cache is (or, for the negative control's engine, is not) at work.
#include "gpu_support.hpp"

using namespace kvgate;

namespace {

// Sends one ~600-token prompt twice; returns the hit-counter delta and the second request's record.
std::pair<CounterDeltas, RequestRecord> repeat_prompt(const Settings& settings) {
    const auto made = make_engine(settings);
    Engine& engine = *made;
    PromptBuilder builder(std::random_device{}() | 1ULL, [&](const std::string& t) { return engine.count_tokens(t); });
    const std::string prompt = builder.build(0, 600, 16, 8).hit();
    const auto before = engine.prefix_cache_counters();
    REQUIRE(before.available);
    for (int i = 0; i < 2; ++i) {
        const Completion c = engine.complete(prompt, 4);
        INFO("request " << i + 1 << ": " << (c.fault ? c.fault->message : "ok"));
        REQUIRE_FALSE(c.fault);
        REQUIRE(c.record.stamps.first_token_ms);
        REQUIRE(c.record.usage.completion_tokens == 4);
        if (i == 1) return {counter_deltas(before, engine.prefix_cache_counters()), c.record};
    }
    return {};
}

}  // namespace

TEST_CASE("engine: prefix cache counters grow on a repeated prompt", "[gpu][engine]") {
    const auto settings = testing::http_settings("apc");
    const auto [deltas, second] = repeat_prompt(settings);
    const int block = make_engine(settings)->describe().block_size;
    INFO("block size " << block << ", hits delta " << deltas.hits << ", queries delta " << deltas.queries
                       << ", cached tokens of the repeat " << second.usage.cached_tokens);
    CHECK(deltas.hits >= std::max(block, 1));
    CHECK(second.usage.cached_tokens >= std::max(block, 1));
}

TEST_CASE("engine: no prefix cache means no hits", "[gpu][engine]") {
    const auto settings = testing::http_settings("nocache");
    const auto [deltas, second] = repeat_prompt(settings);
    INFO("hits delta " << deltas.hits << ", cached tokens of the repeat " << second.usage.cached_tokens);
    CHECK(deltas.hits == 0);
    // A server that reports no cached tokens at all cannot show that none were cached (a skip, unless
    // the check above failed: a skip ends the process, and must not hide that).
    if (second.usage.cached_tokens < 0 && deltas.hits == 0)
        testing::skip_or_fail("the server reports no cached tokens (usage.prompt_tokens_details): start it with "
                              "--enable-prompt-tokens-details");
    CHECK(second.usage.cached_tokens == 0);
}
