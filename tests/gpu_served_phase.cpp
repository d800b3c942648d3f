// Any served phase's gate and its negative control, one pair of test cases for every engine: the CTest
// entry (tests/CMakeLists.txt's kvgate_served_gate) names the phase (KVGATE_GATE_PHASE) and the
// fixtures that serve it with the cache (KVGATE_GATE_FIXTURE) and without (KVGATE_GATE_NOCACHE_FIXTURE),
// so a new engine needs no test file of its own for its gate.
#include "gpu_support.hpp"

using namespace kvgate;

namespace {

std::string required_env(const char* name) {
    const std::string value = testing::env_or(name, "");
    if (value.empty()) FAIL(name << " is not set: register the gate with kvgate_served_gate (tests/CMakeLists.txt)");
    return value;
}

}  // namespace

TEST_CASE("served phase: the cache saves TTFT", "[gpu][served]") {
    const PhaseDescriptor phase = phase_descriptor(required_env("KVGATE_GATE_PHASE"));
    const auto settings = testing::http_settings(required_env("KVGATE_GATE_FIXTURE"), phase.engine);
    const auto result = testing::measure_and_report(settings, phase);
    INFO(result.verdict.reason << "\n" << result.verdict.fix);
    // Both of the gate's tests: the cache's saving at equal length, and the seed's invalidation cost.
    CHECK(result.verdict.cache.outcome == Outcome::pass);
    CHECK(result.verdict.invalidation.outcome == Outcome::pass);
    CHECK(result.hit_stats.cached_tokens_median > 0);
    REQUIRE(result.verdict.outcome == Outcome::pass);
}

TEST_CASE("served phase: the gate fails without the cache", "[gpu][served][negative]") {
    const PhaseDescriptor phase = phase_descriptor(required_env("KVGATE_GATE_PHASE"));
    const auto settings = testing::http_settings(required_env("KVGATE_GATE_NOCACHE_FIXTURE"), phase.engine);
    const auto result = testing::measure_negative_control(settings, phase);
    INFO(result.verdict.reason);
    REQUIRE_FALSE(result.engine.prefix_caching);
    REQUIRE(result.verdict.outcome == Outcome::fail);
}
