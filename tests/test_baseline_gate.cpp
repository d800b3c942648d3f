// The baseline gate on results: loading and refusing a baseline, comparing two runs, and folding the
// comparison into the verdict.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "kvgate/experiment/baseline_gate.hpp"
#include "kvgate/experiment/verdict.hpp"

using namespace kvgate;

namespace {

// Pairs with miss/hit ratios around `ratio` (a fixed spread of a few percent).
PhaseResult run_at(double ratio, int pairs = 10, const std::string& model = "m") {
    PhaseResult r;
    r.phase = phase_descriptor("phase1");
    r.settings.target.model = model;
    r.engine.name = "vllm";
    r.engine.endpoint = "/v1/chat/completions";
    r.engine.block_size = 16;
    r.git_revision = "abc";
    for (int i = 0; i < pairs; ++i)
        for (Arm arm : {Arm::hit, Arm::miss}) {
            Trial t;
            t.index = static_cast<int>(r.trials.size());
            t.arm = arm;
            const double wiggle = 1 + 0.03 * std::sin(1.7 * i + (arm == Arm::hit ? 0 : 1));
            t.ttft_ms = (arm == Arm::hit ? 100 : 100 * ratio) * wiggle;
            t.measured.usage = {800, 50, arm == Arm::hit ? 768 : 0};
            r.trials.push_back(t);
        }
    decide(r, 10, 0.95);
    r.settings.hit_miss.trials = pairs;
    r.complete = true;
    return r;
}

// A checkpoint of a run killed after `pairs` of its 10 pairs, as mark_partial writes it, but
// with the pass its pairs would give (a file may say anything).
PhaseResult killed_at(int pairs) {
    PhaseResult r = run_at(4.0, pairs);
    r.settings.hit_miss.trials = 10;
    r.complete = false;
    return r;
}

// Each test its own directory: CTest may run them at once.
std::filesystem::path temp_file(const PhaseResult& r, const std::string& test) {
    const auto dir = std::filesystem::temp_directory_path() / ("kvgate_test_baseline_gate_" + test);
    std::filesystem::create_directories(dir);
    const auto path = dir / "results_phase1.json";
    write_results(r, path);
    return path;
}

}  // namespace

TEST_CASE("the same saving passes the baseline gate and a halved saving fails it while the absolute gate passes",
          "[baseline_gate]") {
    const LoadedBaseline base{"b.json", run_at(4.0)};
    PhaseResult same = run_at(4.0);
    same.baseline = compare_runs(base, same, 10, {});
    CHECK(same.baseline->outcome == Outcome::pass);
    fold_baseline(same.verdict, *same.baseline);
    CHECK(same.verdict.outcome == Outcome::pass);
    CHECK_THAT(same.verdict.reason, Catch::Contains("baseline b.json (revision abc): pass"));

    PhaseResult halved = run_at(2.0);
    REQUIRE(halved.verdict.outcome == Outcome::pass);  // 2x still clears the absolute 10 %
    halved.baseline = compare_runs(base, halved, 10, {});
    CHECK(halved.baseline->outcome == Outcome::fail);
    CHECK(halved.baseline->ratio_estimate == Approx(0.5).epsilon(0.05));
    CHECK(halved.baseline->baseline_pair_ratios.size() == 10);
    fold_baseline(halved.verdict, *halved.baseline);
    CHECK(halved.verdict.outcome == Outcome::fail);
    CHECK_THAT(halved.verdict.reason, Catch::Contains("the saving shrank against the baseline") &&
                                          Catch::Contains("the absolute gate passed"));
}

TEST_CASE("an indeterminate absolute verdict becomes a fail when the baseline gate fails", "[baseline_gate]") {
    Verdict v;
    v.outcome = Outcome::indeterminate;
    v.reason = "the interval straddles the threshold";
    v.fix = "more trials";
    BaselineRecord rec;
    rec.outcome = Outcome::fail;
    rec.path = "b.json";
    fold_baseline(v, rec);
    CHECK(v.outcome == Outcome::fail);
    CHECK_THAT(v.reason, Catch::Contains("the saving shrank against the baseline") &&
                             Catch::Contains("the absolute gate could not decide: the interval straddles"));
}

TEST_CASE("a pass the baseline could not compare stays a pass, with the pairs needed", "[baseline_gate]") {
    Verdict v;
    v.outcome = Outcome::pass;
    v.reason = "the interval's lower bound clears the threshold";
    BaselineRecord rec;
    rec.outcome = Outcome::indeterminate;
    rec.path = "b.json";
    rec.reason = "the interval straddles the regression bar";
    rec.fix = "record the baseline and this run with about 25 pairs each (--trials 25)";
    fold_baseline(v, rec);
    CHECK(v.outcome == Outcome::pass);
    CHECK_THAT(v.reason, Catch::StartsWith("the interval's lower bound clears the threshold; baseline b.json") &&
                             Catch::Contains("straddles the regression bar"));
    CHECK_THAT(v.fix, Catch::Contains("--trials 25"));
}

TEST_CASE("a verdict that did not pass keeps its outcome beside the comparison", "[baseline_gate]") {
    Verdict v;
    v.outcome = Outcome::unverified;
    v.reason = "misses were cached";
    BaselineRecord rec;
    rec.outcome = Outcome::fail;
    rec.path = "b.json";
    fold_baseline(v, rec);
    CHECK(v.outcome == Outcome::unverified);
    CHECK_THAT(v.reason, Catch::StartsWith("misses were cached; baseline b.json"));
}

TEST_CASE("a baseline of another model is refused unless declared comparable and a missing one is named",
          "[baseline_gate]") {
    const auto path = temp_file(run_at(4.0, 4, "other-model"), "refusal");
    const LoadedBaseline b = load_baseline(path.parent_path().string(), phase_descriptor("phase1"));  // a directory
    CHECK(b.result.settings.target.model == "other-model");
    const PhaseResult current = run_at(4.0, 4);
    CHECK_THROWS_WITH(check_baseline(b, current, false),
                      Catch::Contains("model (baseline 'other-model', current 'm')") &&
                          Catch::Contains("KVGATE_BASELINE_COMPARABLE"));
    CHECK(check_baseline(b, current, true).size() == 1);
    CHECK_THROWS_WITH(load_baseline((path.parent_path() / "nothing.json").string(), phase_descriptor("phase1")),
                      Catch::Contains("KVGATE_BASELINE: no results file"));
    CHECK_THROWS_WITH(load_baseline(path.string(), phase_descriptor("phase2")), Catch::Contains("holds phase 'phase1'"));
}

TEST_CASE("the comparison survives the results file", "[baseline_gate]") {
    const LoadedBaseline base{"b.json", run_at(4.0)};
    PhaseResult r = run_at(2.0);
    r.baseline = compare_runs(base, r, 10, {"model (x)"});
    const PhaseResult back = read_results_file(temp_file(r, "roundtrip"));
    REQUIRE(back.baseline);
    CHECK(back.baseline->outcome == Outcome::fail);
    CHECK(back.baseline->differences == std::vector<std::string>{"model (x)"});
    CHECK(back.baseline->ratio_high == Approx(r.baseline->ratio_high));
    CHECK(back.baseline->baseline_pair_ratios.size() == 10);
}

TEST_CASE("compare passes only a finished run whose own verdict passed", "[baseline_gate]") {
    const LoadedBaseline base{"b.json", run_at(4.0)};
    PhaseResult same = run_at(4.0);
    const BaselineRecord rec = compare_runs(base, same, 10, {});
    REQUIRE(rec.outcome == Outcome::pass);
    CHECK(compare_verdict(same, rec).outcome == Outcome::pass);

    const PhaseResult killed = killed_at(3);
    const BaselineRecord killed_rec = compare_runs(base, killed, 10, {});
    REQUIRE(killed_rec.outcome != Outcome::error);  // three pairs do compare
    const Verdict partial = compare_verdict(killed, killed_rec);
    CHECK(partial.outcome == Outcome::error);
    CHECK_THAT(partial.reason, Catch::StartsWith("the current run is partial (\"complete\": false, 3 of 10 pairs "
                                                 "measured, killed or still running)"));
    CHECK_THAT(partial.fix, Catch::Contains("a run that finished"));

    for (Outcome own : {Outcome::fail, Outcome::unverified, Outcome::error, Outcome::indeterminate}) {
        PhaseResult r = same;
        r.verdict.outcome = own;
        r.verdict.reason = "its own reason";
        const Verdict v = compare_verdict(r, rec);
        CHECK(v.outcome == own);
        CHECK_THAT(v.reason, Catch::StartsWith("its own reason; baseline b.json (revision abc): pass"));
    }
}

TEST_CASE("a partial baseline is refused, saying what to give instead", "[baseline_gate]") {
    PhaseResult faulted = killed_at(2);
    faulted.fault = Fault{FaultKind::http_status, FaultStage::headers, "HTTP 500", 5, FaultRequest::measured};
    for (const PhaseResult& partial : {killed_at(3), faulted}) {
        const auto path = temp_file(partial, "partial");
        const std::string said = partial.fault ? "2 of 10 pairs measured, stopped by a fault (http_status)"
                                               : "3 of 10 pairs measured, killed or still running";
        CHECK_THROWS_WITH(load_baseline(path.string(), phase_descriptor("phase1")),
                          Catch::StartsWith("KVGATE_BASELINE '" + path.string() + "' is a partial run") &&
                              Catch::Contains(said) && Catch::Contains("a baseline must be a run that finished"));
        CHECK_THROWS_WITH(require_finished_baseline({path, read_results_file(path)}, "BASELINE"),
                          Catch::StartsWith("BASELINE '" + path.string() + "' is a partial run"));
    }
}
