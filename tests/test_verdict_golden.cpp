// The verdicts decide() gives the recorded runs (bench/data, tests/data) and variants of them made
// to reach every rule, pinned key for key in tests/data/verdicts_golden.json: a refactor of the
// rules must give the same outcome, reason, fix and notes. After a change that is meant to alter a
// verdict, rewrite the file with KVGATE_WRITE_GOLDEN=1 and read its diff.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <utility>
#include <vector>

#include "kvgate/experiment/verdict.hpp"
#include "kvgate/model/results_json.hpp"

using namespace kvgate;

namespace {

const std::filesystem::path source_dir = KVGATE_SOURCE_DIR;

std::vector<std::filesystem::path> recorded_runs() {
    std::vector<std::filesystem::path> files = {source_dir / "tests/data/results_phase1_d212373.json"};
    for (const auto& entry : std::filesystem::directory_iterator(source_dir / "bench/data"))
        if (entry.path().extension() == ".json") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files;
}

// Each variant changes the recorded run so that another rule decides.
const std::vector<std::pair<const char*, std::function<void(PhaseResult&)>>>& variants() {
    static const std::vector<std::pair<const char*, std::function<void(PhaseResult&)>>> v = {
        {"as recorded", [](PhaseResult&) {}},
        {"a fault", [](PhaseResult& r) { r.fault = Fault{FaultKind::transport, FaultStage::stream, "gone", 3}; }},
        {"a TTFT of zero", [](PhaseResult& r) { r.trials.back().ttft_ms = 0; }},
        {"a miss served from cache",
         [](PhaseResult& r) {
             for (Trial& t : r.trials)
                 if (t.arm == Arm::miss && !t.warmup) {
                     t.measured.usage.cached_tokens = t.measured.usage.prompt_tokens > 0 ? t.measured.usage.prompt_tokens : 512;
                     break;
                 }
         }},
        {"hits that reused nothing",
         [](PhaseResult& r) {
             for (Trial& t : r.trials)
                 if (t.arm == Arm::hit) t.measured.usage.cached_tokens = 0;
         }},
        {"one round", [](PhaseResult& r) { r.trials.resize(std::min<std::size_t>(r.trials.size(), 6)); }},
        {"a bar of 500 %", [](PhaseResult& r) { r.settings.gate.threshold_pct = 500; }},
        {"a bar of 300 %", [](PhaseResult& r) { r.settings.gate.threshold_pct = 300; }},
        {"no cold arm",
         [](PhaseResult& r) {
             r.trials.erase(std::remove_if(r.trials.begin(), r.trials.end(), [](const Trial& t) { return t.arm == Arm::cold; }),
                            r.trials.end());
         }},
    };
    return v;
}

nlohmann::json verdicts_now() {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& file : recorded_runs()) {
        const PhaseResult recorded = read_results_file(file);
        for (const auto& [name, change] : variants()) {
            PhaseResult r = recorded;
            change(r);
            decide(r, r.settings.gate.threshold_pct, r.settings.gate.confidence);
            const Verdict& v = r.verdict;
            out[file.filename().string() + ": " + name] = {
                {"outcome", to_string(v.outcome)}, {"reason", v.reason},     {"fix", v.fix},
                {"evidence", v.evidence},         {"physics", v.physics},   {"rounds", v.rounds},
                {"ratio", v.ratio},               {"cache_outcome", to_string(v.cache.outcome)},
                {"invalidation_outcome", to_string(v.invalidation.outcome)}};
        }
    }
    return out;
}

}  // namespace

TEST_CASE("decide() gives the recorded runs and their variants the verdicts pinned in the golden file", "[verdict][golden]") {
    const std::filesystem::path golden = source_dir / "tests/data/verdicts_golden.json";
    const nlohmann::json now = verdicts_now();
    if (const char* write = std::getenv("KVGATE_WRITE_GOLDEN"); write && std::string(write) == "1") {
        std::ofstream(golden) << now.dump(1) << "\n";
        WARN("wrote " << golden.string());
    }
    std::ifstream in(golden);
    REQUIRE(in.good());
    const nlohmann::json pinned = nlohmann::json::parse(in);
    CHECK(now.size() == pinned.size());
    for (const auto& [key, verdict] : pinned.items()) {
        INFO(key);
        REQUIRE(now.contains(key));
        for (const auto& [field, value] : verdict.items()) {
            INFO(field);
            CHECK(now[key][field] == value);
        }
    }
}

TEST_CASE("each rule before timing abstains on a healthy run and decides the variant made for it", "[verdict]") {
    const PhaseResult healthy = read_results_file(source_dir / "bench/data/cpu_phase1_eade2c6_a.json");
    // The index in rules_before_timing of the first rule that decides, or -1 for the timing.
    const auto first_rule = [](PhaseResult r) {
        Verdict v;
        const auto facts = verdict_detail::gather_facts(r, v, r.settings.gate.threshold_pct, r.settings.gate.confidence);
        int i = 0;
        for (const auto rule : verdict_detail::rules_before_timing) {
            if (rule(facts)) return i;
            ++i;
        }
        return -1;
    };
    const auto variant = [&](const char* name) {
        PhaseResult r = healthy;
        for (const auto& [n, change] : variants())
            if (std::string(n) == name) change(r);
        return r;
    };
    CHECK(first_rule(healthy) == -1);
    CHECK(first_rule(variant("a fault")) == 0);                   // fault_rule
    CHECK(first_rule(variant("a TTFT of zero")) == 2);            // measurement_rule
    CHECK(first_rule(variant("a miss served from cache")) == 3);  // contamination_rule
    CHECK(first_rule(variant("hits that reused nothing")) == 4);  // hit_reuse_rule
    CHECK(first_rule(variant("one round")) == 5);                 // rounds_rule
    CHECK(first_rule(variant("a bar of 300 %")) == -1);           // the timing decides
    CHECK(std::size(verdict_detail::rules_before_timing) == 6);
}
