// The experiment seam's run side: every experiment kind has a runner, and `kvgate run NAME` finds the
// phase to run by its name, by its experiment's only phase, or by the engine kind the settings name.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "kvgate/experiment/experiment_runners.hpp"

using namespace kvgate;

TEST_CASE("experiment runners: one for every kind of experiment in the table", "[experiment]") {
    std::set<ExperimentKind> kinds;
    for (const auto& e : experiments()) kinds.insert(e.kind);
    for (ExperimentKind kind : kinds) CHECK_NOTHROW(experiment_runner(kind));
    for (const auto& e : experiments())
        for (const auto& p : e.phases) CHECK(experiment_of(p).id == e.id);
}

TEST_CASE("phase_to_run: a phase by name, an experiment's only phase, or its phase on the settings' engine",
          "[experiment]") {
    CHECK(phase_to_run("phase2", EngineKind::vllm_http).name == "phase2");
    CHECK(phase_to_run("experiment2", EngineKind::vllm_http).name == "curve");
    CHECK(phase_to_run("fleet", EngineKind::vllm_http).name == "fleet_phase1");
    CHECK(phase_to_run("experiment1", EngineKind::vllm_http).name == "phase1");
    CHECK(phase_to_run("experiment1", EngineKind::vllm_python).name == "phase2");
    CHECK(phase_to_run("experiment1", EngineKind::llamacpp_http).name == "llamacpp_phase1");
    CHECK_THROWS_WITH(phase_to_run("experiment1", EngineKind::vllm_fleet),
                      Catch::Contains("KVGATE_ENGINE") && Catch::Contains("vllm_python (phase2)"));
    CHECK_THROWS_WITH(phase_to_run("experiment3", EngineKind::vllm_http),
                      Catch::Contains("neither an experiment (experiment1, fleet, experiment2)") &&
                          Catch::Contains("nor a phase (phase1, phase2"));
}
