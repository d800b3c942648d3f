// The gate through a router in front of vLLM replicas (label `fleet`): a cache-aware router keeps
// each query on its warm-up's replica and passes; round_robin sends it elsewhere and must fail,
// with the routing named before any timing (the negative control).
#include "gpu_support.hpp"

using namespace kvgate;

namespace {

// Settings for the fleet a fixture started (router URL, replicas, policy), results and reports in
// KVGATE_OUT/fleet/<policy> (skip_or_fail if it started none).
Settings fleet_settings(const std::string& policy) {
    const std::string fixture = "fleet_" + policy;
    const auto env = testing::read_engine_env(fixture);
    Settings s = testing::with_fixture_engine(settings_from_env(), env);
    s.engine = EngineKind::vllm_fleet;
    if (auto it = env.find("KVGATE_FLEET_REPLICA_URLS"); it != env.end()) s.fleet.replica_urls = it->second;
    if (auto it = env.find("KVGATE_FLEET_POLICY"); it != env.end() && !it->second.empty()) s.fleet.policy = it->second;
    if (s.target.url.empty())
        testing::skip_or_fail("no fleet: fixture '" + fixture + "' started none (see engine.fleet." + policy +
                              ".start's output) and KVGATE_URL is not set");
    s.out = (std::filesystem::path(s.out) / "fleet" / policy).string();
    return s;
}

// Measures through the router, then writes the fleet report (summary.md, placement figure) beside it.
PhaseResult measure_fleet(const Settings& s) {
    const auto result = testing::measure_and_report(s, phase_descriptor("fleet_phase1"));
    const auto placement = fleet_placement(result);
    std::cout << (placement ? placement->message() + "\n" + placement->reuse_line() : std::string("not a fleet"))
              << std::endl;
    write_reports(s.out, s.out, experiment("fleet"));
    std::cout << "fleet report: " << s.out << "/summary.md, " << s.out << "/" << placement_figure_name(experiment("fleet"))
              << ".png" << std::endl;
    return result;
}

}  // namespace

TEST_CASE("fleet: a cache-aware router keeps each query on its warm-up's replica", "[fleet]") {
    const auto settings = fleet_settings("cache_aware");
    const auto result = measure_fleet(settings);
    INFO(result.verdict.reason << "\n" << result.verdict.fix);
    REQUIRE(result.engine.replica_urls.size() >= 2);
    const auto placement = fleet_placement(result);
    REQUIRE(placement);
    CHECK(placement->check() == FleetPlacementCheck::local);
    REQUIRE(result.verdict.outcome == Outcome::pass);
}

TEST_CASE("fleet: round_robin sends queries away from their warm-up and the gate names it", "[fleet][negative]") {
    const auto settings = fleet_settings("round_robin");
    const auto result = measure_fleet(settings);
    INFO(result.verdict.reason);
    REQUIRE(result.engine.replica_urls.size() >= 2);
    REQUIRE(result.verdict.outcome == Outcome::fail);
    CHECK_THAT(result.verdict.reason, Catch::Contains("went to another replica than their warm-up") &&
                                          Catch::Contains("round_robin"));
}
