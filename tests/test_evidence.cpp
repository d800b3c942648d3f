#include <catch2/catch.hpp>

#include "kvgate/evidence.hpp"

using namespace kvgate;

TEST_CASE("prefix-cache counters and cache config are read from vLLM's /metrics", "[evidence]") {
    const std::string text =
        "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.\n"
        "# TYPE vllm:prefix_cache_queries_total counter\n"
        "vllm:prefix_cache_queries_total{engine=\"0\",model_name=\"m\"} 866.0\n"
        "vllm:prefix_cache_queries_total{engine=\"1\",model_name=\"m\"} 100.0\n"
        "vllm:prefix_cache_queries_created{engine=\"0\",model_name=\"m\"} 1.7959035625610852e+09\n"
        "vllm:prefix_cache_hits_total{engine=\"0\",model_name=\"m\"} 384.0\n"
        "vllm:external_prefix_cache_hits_total{engine=\"0\",model_name=\"m\"} 999.0\n"
        "vllm:cache_config_info{_block_size_resolved=\"True\",block_size=\"128\",enable_prefix_caching=\"False\","
        "engine=\"0\"} 1.0\n";
    const auto view = parse_metrics(text);
    CHECK(view.counters.available);
    CHECK(view.counters.queries == 966);
    CHECK(view.counters.hits == 384);  // external_ counters are another cache
    CHECK(view.block_size == 128);
    REQUIRE(view.prefix_caching);
    CHECK_FALSE(*view.prefix_caching);
}

TEST_CASE("a server without the counters gives no evidence", "[evidence]") {
    const auto view = parse_metrics("some_other_metric 1\n\ngarbage line\n");
    CHECK_FALSE(view.counters.available);
    CHECK(view.block_size == 0);
    CHECK_FALSE(view.prefix_caching);
    CHECK_FALSE(counter_deltas({true, 1, 1}, view.counters).available);
}

TEST_CASE("deltas and block-granular expectations", "[evidence]") {
    const auto d = counter_deltas({true, 100, 40}, {true, 900, 424});
    CHECK(d.available);
    CHECK(d.queries == 800);
    CHECK(d.hits == 384);
    CHECK(expected_hit_cached_tokens(770, 128) == 768);
    CHECK(expected_hit_cached_tokens(100, 128) == 0);
    CHECK(miss_cached_tokens_acceptable(0, 128));
    CHECK(miss_cached_tokens_acceptable(127, 128));
    CHECK_FALSE(miss_cached_tokens_acceptable(128, 128));
    CHECK_FALSE(miss_cached_tokens_acceptable(1, 0));  // block unknown: any cached token counts
}
