// The experiments' phase descriptors: unique names, one results file each, and names for engine kinds.
#include <catch2/catch.hpp>

#include <set>

#include "kvgate/model/experiment.hpp"

using namespace kvgate;

TEST_CASE("every phase has a unique name and results file, and a counterpart that exists", "[experiment]") {
    std::set<std::string> names, files;
    std::size_t phases = 0;
    for (const auto& e : experiments()) {
        CHECK_FALSE(e.id.empty());
        for (const auto& p : e.phases) {
            ++phases;
            names.insert(p.name);
            files.insert(p.results_file);
            CHECK_FALSE(p.seed_key.empty());
            CHECK_FALSE(p.label.empty());
            if (!p.overhead_against.empty()) {
                REQUIRE(find_phase(p.overhead_against));
                CHECK(find_phase(p.overhead_against)->role == PhaseRole::in_process);
            }
        }
    }
    CHECK(names.size() == phases);
    CHECK(files.size() == phases);
}

TEST_CASE("the seed's experiment: phase 1 over HTTP, phase 2 in-process", "[experiment]") {
    const auto p1 = phase_descriptor("phase1");  // a copy: GCC 13 warns of a reference from a temporary argument
    CHECK(p1.seed_key == "phase1_http_api");
    CHECK(p1.results_file == "results_phase1.json");
    CHECK(p1.engine == EngineKind::vllm_http);
    CHECK(phase_descriptor("phase2").seed_key == "phase2_python_api");
    CHECK(phase_for_engine(EngineKind::vllm_python) == phase_descriptor("phase2"));
    CHECK(phase_for_engine(EngineKind::llamacpp_http) == phase_descriptor("llamacpp_phase1"));
    CHECK(phase_descriptor("llamacpp_phase1").results_file == "results_llamacpp_phase1.json");
    CHECK(engine_kind_from_string("llamacpp") == EngineKind::llamacpp_http);  // llamacpp.sh's engine.env
    CHECK_THROWS_WITH(phase_descriptor("phase9"), Catch::Contains("phase1"));
}

TEST_CASE("engine kinds have stable names, both ways", "[experiment]") {
    for (const auto& n : detail::engine_kind_names) CHECK(engine_kind_from_string(to_string(n.value)) == n.value);
    CHECK(std::string(to_string(EngineKind::vllm_http)) == "vllm_http");
    CHECK_THROWS_WITH(engine_kind_from_string("tgi"), Catch::Contains("KVGATE_ENGINE") && Catch::Contains("vllm_http"));
}
