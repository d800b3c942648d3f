#include <catch2/catch.hpp>

#include "kvgate/evidence.hpp"

using namespace kvgate;

TEST_CASE("a Prometheus exposition is read line by line, skipping comments and malformed lines", "[evidence]") {
    const auto samples = parse_prometheus("# HELP x\nx_total{a=\"1\",b=\"two\"} 3.5\ny 2\ngarbage\n\n");
    REQUIRE(samples.size() == 2);
    CHECK(samples[0].name == "x_total");
    CHECK(detail::label_value(samples[0].labels, "b") == "two");
    CHECK(samples[0].value == 3.5);
    CHECK(samples[1].name == "y");
    CHECK(samples[1].labels.empty());
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
