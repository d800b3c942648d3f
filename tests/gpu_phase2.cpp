// Phase 2: the same protocol and content as phase 1, with vLLM's LLM class in this process.
// Each test case runs in its own process (one embedded interpreter per process).
#include "gpu_support.hpp"

#include <cstdlib>
#include <filesystem>

using namespace kvgate;

namespace {

// The engine phase 1's fixture serves, loaded in-process; nullopt (after skip_or_fail) when the
// environment cannot load it.
std::optional<PythonEngineOptions> phase2_options(Settings& s, bool prefix_caching) {
    PythonEngineOptions o;
    o.venv = testing::env_or("KVGATE_VENV", "");
    if (auto problem = python_environment_problem(o.venv)) {
        testing::skip_or_fail("phase 2 cannot run: " + *problem);
        return std::nullopt;
    }
    const std::string default_model = testing::env_or("KVGATE_REPO", ".") + "/models/opt-125m-dummy";
    o.model = testing::env_or("KVGATE_ENGINE_MODEL", default_model);
    o.dummy_weights = o.model == default_model;
    o.prefix_caching = prefix_caching;
    if (std::system("nvidia-smi > /dev/null 2>&1") != 0) o.dtype = "float32";  // as engine.sh: fast on CPUs
    s.model = o.dummy_weights ? "opt-125m-dummy" : o.model;
    s.max_output_tokens = 1;  // the seed's phase-2 TTFT: a 1-token generation
    return o;
}

}  // namespace

TEST_CASE("phase 2: the prefix cache saves TTFT in-process", "[gpu][phase2]") {
    Settings s = settings_from_env();
    const auto options = phase2_options(s, true);
    if (!options) return;
    PythonEngine engine(*options);
    const auto result = testing::measure_and_report(engine, s, "phase2_python_api", "results_phase2.json");
    INFO(result.verdict.reason << "\n" << result.verdict.fix);
    REQUIRE(result.verdict.outcome == Outcome::pass);
}

TEST_CASE("phase 2: the gate fails without prefix caching", "[gpu][phase2][negative]") {
    Settings s = settings_from_env();
    s.out = testing::env_or("KVGATE_NEGATIVE_OUT", "negative");
    const auto options = phase2_options(s, false);
    if (!options) return;
    PythonEngine engine(*options);
    const auto result = testing::measure_and_report(engine, s, "phase2_python_api", "results_phase2.json");
    INFO(result.verdict.reason);
    REQUIRE_FALSE(result.engine.prefix_caching);
    REQUIRE(result.verdict.outcome == Outcome::fail);
}
