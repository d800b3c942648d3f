// Phase 2: the same protocol and content as phase 1, with vLLM's LLM class in this process.
// Each test case runs in its own process (one embedded interpreter per process).
#include "gpu_support.hpp"

using namespace kvgate;

namespace {

// The model phase 1's fixture serves, loaded in-process (skip_or_fail when the environment cannot
// load it).
Settings phase2_settings(bool prefix_caching) {
    Settings s = settings_from_env();
    if (auto problem = python_environment_problem(s.python.venv)) testing::skip_or_fail("phase 2 cannot run: " + *problem);
    const std::string default_model = "models/opt-125m-dummy";  // as engine.sh, from the repository root
    s.target.model = testing::env_or("KVGATE_ENGINE_MODEL", default_model);
    s.python.dummy_weights = s.target.model == default_model;
    s.prefix_caching = prefix_caching;
    return s;
}

}  // namespace

TEST_CASE("phase 2: the prefix cache saves TTFT in-process", "[gpu][phase2]") {
    const auto s = phase2_settings(true);
    const auto result = testing::measure_and_report(s, phase_descriptor("phase2"));
    INFO(result.verdict.reason << "\n" << result.verdict.fix);
    // Both of the gate's tests: the cache's saving at equal length, and the seed's invalidation cost.
    CHECK(result.verdict.cache.outcome == Outcome::pass);
    CHECK(result.verdict.invalidation.outcome == Outcome::pass);
    REQUIRE(result.verdict.outcome == Outcome::pass);
}

TEST_CASE("phase 2: the gate fails without prefix caching", "[gpu][phase2][negative]") {
    auto s = phase2_settings(false);
    const auto result = testing::measure_negative_control(s, phase_descriptor("phase2"));
    INFO(result.verdict.reason);
    REQUIRE_FALSE(result.engine.prefix_caching);
    REQUIRE(result.verdict.outcome == Outcome::fail);
}
