// Phase 1, the gate: hit vs miss TTFT over HTTP streaming against the real engine, and its
// negative control against an engine without prefix caching, which must fail the gate.
#include "gpu_support.hpp"

using namespace kvgate;

TEST_CASE("phase 1: the prefix cache saves TTFT over HTTP", "[gpu][phase1]") {
    const auto settings = testing::http_settings("apc");
    const auto result = testing::measure_and_report(settings, phase_descriptor("phase1"));
    INFO(result.verdict.reason << "\n" << result.verdict.fix);
    // Both of the gate's tests: the cache's saving at equal length, and the seed's invalidation cost.
    CHECK(result.verdict.cache.outcome == Outcome::pass);
    CHECK(result.verdict.invalidation.outcome == Outcome::pass);
    REQUIRE(result.verdict.outcome == Outcome::pass);
}

TEST_CASE("phase 1: the gate fails without prefix caching", "[gpu][phase1][negative]") {
    auto settings = testing::http_settings("nocache");
    const auto result = testing::measure_negative_control(settings, phase_descriptor("phase1"));
    INFO(result.verdict.reason);
    REQUIRE_FALSE(result.engine.prefix_caching);
    REQUIRE(result.verdict.outcome == Outcome::fail);
}
