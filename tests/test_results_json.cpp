// The results JSON against a file the previous version wrote: tests/data/results_phase1_d212373.json
// was written by kvgate at commit d212373 (before the field-list schema), with every kind of value
// (null stamps and counts, a fault, a 64-bit seed). The seed's schema must not move under users.
// Two deliberate changes since (issue 10): `trials` holds the counted trials only, as a reader of the
// seed's format counts them, the warm-ups going to `warmup_trials` beside it; and `engine` gained
// the template's shape. Older files (warm-ups in `trials`, no shape) are still read.
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "kvgate/model/results_json.hpp"

using namespace kvgate;

namespace {

const std::string fixture = std::string(KVGATE_SOURCE_DIR) + "/tests/data/results_phase1_d212373.json";

nlohmann::json load(const std::string& path) {
    std::ifstream in(path);
    REQUIRE(in);
    return nlohmann::json::parse(in);
}

// Every key path of a document; array elements share the path "[]".
void key_paths(const nlohmann::json& j, const std::string& at, std::set<std::string>& out) {
    if (j.is_object())
        for (auto it = j.begin(); it != j.end(); ++it) {
            out.insert(at + "." + it.key());
            key_paths(it.value(), at + "." + it.key(), out);
        }
    else if (j.is_array())
        for (const auto& e : j) key_paths(e, at + "[]", out);
}

std::set<std::string> key_paths(const nlohmann::json& j) {
    std::set<std::string> out;
    key_paths(j, "", out);
    return out;
}

// The previous version's document as this version writes it: warm-up trials moved from `trials` to
// `warmup_trials` (order kept), the engine's template shape added (unknown: null), the TTFT compared
// named (the client's, as then), its rounds capped at the configured ones (no sequential decision then).
nlohmann::json as_written_now(nlohmann::json doc) {
    for (const char* arm : {"cache_hit", "cache_miss"}) {
        nlohmann::json counted = nlohmann::json::array(), warmups = nlohmann::json::array();
        for (const auto& t : doc[arm]["trials"]) (t["warmup"].get<bool>() ? warmups : counted).push_back(t);
        doc[arm]["trials"] = counted;
        doc[arm]["warmup_trials"] = warmups;
    }
    doc["engine"]["template_prefix_tokens"] = nullptr;
    doc["engine"]["template_suffix_tokens"] = nullptr;
    doc["config"]["ttft"] = "client";
    doc["config"]["max_trials"] = doc["config"]["num_trials"];  // it ran those rounds, no more
    doc["config"]["time_budget_s"] = 0.0;
    return doc;
}

}  // namespace

TEST_CASE("a results file of the previous version is read, and written back with warm-ups apart", "[results_json]") {
    const PhaseResult r = read_results_file(fixture, &phase_descriptor("phase1"));
    CHECK(r.phase == phase_descriptor("phase1"));
    CHECK(r.settings.target.model == "opt-125m-dummy");
    CHECK(r.settings.seed == 18446744073709551557ULL);
    CHECK(r.settings.hit_miss.trials == 2);
    CHECK(r.trials.size() == 6);
    CHECK(r.trials[1].arm == Arm::miss);
    CHECK(r.trials[5].measured.usage.cached_tokens == -1);
    CHECK(r.trials[2].measured.engine_ttft_ms);
    CHECK(r.engine.block_size == 128);
    CHECK(r.miss_stats.cached_tokens_median == -1);
    REQUIRE(r.fault);
    CHECK(r.fault->kind == FaultKind::http_status);
    CHECK(r.fault->request == FaultRequest::measured);
    CHECK(r.fault->stage == FaultStage::headers);
    CHECK(r.trials[0].warmup);  // from `trials`, flagged, as that version wrote warm-ups
    const nlohmann::json now = to_json(r);
    CHECK(now == as_written_now(load(fixture)));  // every other key and every value as it was
    CHECK(now["cache_hit"]["trials"].size() == static_cast<std::size_t>(r.settings.hit_miss.trials));  // as the seed counts
    CHECK(now["cache_hit"]["warmup_trials"].size() == 1);
    const PhaseResult back = phase_result_from_json(now, "now.json");
    CHECK(to_json(back) == now);
    CHECK(back.trials.size() == 6);
    CHECK(back.trials[0].warmup);
}

TEST_CASE("a results file found by its name needs no descriptor, and a file of another phase is refused",
          "[results_json]") {
    CHECK(read_results_file(fixture).phase == phase_descriptor("phase1"));  // its `phase` key names it
    CHECK_THROWS_WITH(phase_result_from_json(load(fixture), "results_phase2.json", &phase_descriptor("phase2")),
                      Catch::Contains("results_phase2.json: phase is 'phase1_http_api'") &&
                          Catch::Contains("phase2"));
}

TEST_CASE("a result written now has the keys of the previous version's file, and those added", "[results_json]") {
    PhaseResult r;
    r.phase = phase_descriptor("phase1");
    for (int i = 0; i < 2; ++i) {
        Trial t;
        t.index = i;
        t.arm = i == 0 ? Arm::hit : Arm::miss;
        r.trials.push_back(t);
    }
    r.fault = Fault{FaultKind::no_done, FaultStage::stream, "x", 2, FaultRequest::warm};
    auto expected = key_paths(load(fixture));
    for (const char* added : {".cache_hit.warmup_trials", ".cache_miss.warmup_trials", ".engine.template_prefix_tokens",
                              ".engine.template_suffix_tokens", ".config.ttft", ".config.max_trials",
                              ".config.time_budget_s"})
        expected.insert(added);
    CHECK(key_paths(to_json(r)) == expected);
}

TEST_CASE("fault kinds, requests and stages keep their names in JSON", "[results_json]") {
    for (const auto& n : detail::fault_kind_names) CHECK(fault_kind_from_string(n.name) == n.value);
    CHECK(std::string(to_string(FaultKind::connection_refused)) == "connection_refused");
    CHECK(std::string(to_string(FaultKind::python_exception)) == "python_exception");
    CHECK(std::string(to_string(FaultRequest::measured)) == "measured");
    CHECK(std::string(to_string(FaultStage::generate)) == "generate");
    nlohmann::json doc = load(fixture);
    doc["fault"]["kind"] = "gremlins";
    CHECK_THROWS_WITH(phase_result_from_json(doc, "f.json"), Catch::Contains("f.json: fault.kind is 'gremlins'"));
}

TEST_CASE("a fleet's placements, replicas and per-replica counters round-trip and a single server writes none",
          "[results_json][fleet]") {
    PhaseResult r;
    r.phase = phase_descriptor("fleet_phase1");
    r.engine.replica_urls = {"http://127.0.0.1:1", "http://127.0.0.1:2"};
    r.engine.router_policy = "cache_aware";
    r.counters = {true, 300, 200};
    r.counters.per_replica = {{true, 300, 200}, {true, 0, 0}};
    Trial t;
    Placement served;
    served.outcome = PlacementOutcome::served;
    served.replica = 1;
    served.replicas = {1};
    served.queried_tokens = 800;
    served.hit_tokens = 768;
    t.measured.placement = served;
    Placement lost;
    lost.outcome = PlacementOutcome::several_moved;
    lost.replicas = {0, 1};
    t.warm.placement = lost;
    r.trials.push_back(t);
    const auto doc = to_json(r);
    CHECK(doc["engine"]["replica_urls"].size() == 2);
    CHECK(doc["cache_evidence"]["prometheus"]["per_replica"][0]["hits_delta"] == 200);
    CHECK(doc["cache_hit"]["trials"][0]["placement"]["replica"] == 1);
    CHECK(doc["cache_hit"]["trials"][0]["warm"]["placement"]["replica"].is_null());
    const PhaseResult back = phase_result_from_json(doc, "fleet.json", &phase_descriptor("fleet_phase1"));
    CHECK(to_json(back) == doc);
    REQUIRE(back.trials[0].warm.placement);
    CHECK(back.trials[0].warm.placement->outcome == PlacementOutcome::several_moved);
    CHECK(back.engine.router_policy == "cache_aware");

    PhaseResult single;
    single.trials.push_back(Trial{});
    const auto plain = to_json(single);
    CHECK_FALSE(plain["engine"].contains("replica_urls"));
    CHECK_FALSE(plain["cache_hit"]["trials"][0].contains("placement"));
    CHECK_FALSE(plain["cache_evidence"]["prometheus"].contains("per_replica"));
}

TEST_CASE("a results file read back keeps the bar and the confidence it was decided at", "[results_json]") {
    PhaseResult r = phase_result_from_json(load(fixture), "fixture", &phase_descriptor("phase1"));
    r.verdict.threshold_pct = 25;
    r.verdict.confidence = 0.9;
    const PhaseResult back = phase_result_from_json(to_json(r), "written");
    CHECK(back.settings.gate.threshold_pct == 25);
    CHECK(back.settings.gate.confidence == 0.9);
}
