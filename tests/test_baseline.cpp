#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "kvgate/experiment/baseline.hpp"

using namespace kvgate;

namespace {

// A run whose pairs have log ratios `center` + offsets; hit TTFTs `hit_ms` scaled the same way.
RunSample run(double ratio, const std::vector<double>& offsets, double hit_ms = 100) {
    RunSample s;
    for (double o : offsets) {
        s.log_ratios.push_back(std::log(ratio) + o);
        s.hit_ttft_ms.push_back(hit_ms * std::exp(o / 2));
    }
    return s;
}

const std::vector<double> spread = {-0.06, 0.04, -0.02, 0.05, 0.01, -0.03, 0.02, -0.01, 0.03, -0.03};

}  // namespace

TEST_CASE("Student's t quantile at the fractional df Welch gives (scipy.stats.t.ppf)", "[baseline]") {
    CHECK(student_t_quantile(0.975, 2.5) == Approx(3.5746548420036817).epsilon(1e-9));
    CHECK(student_t_quantile(0.995, 7.3) == Approx(3.451031655622185).epsilon(1e-9));
    CHECK(student_t_quantile(0.975, 1000) == Approx(1.9623390808264083).epsilon(1e-9));
    CHECK(student_t_quantile(0.975, 1) == Approx(12.706204736174694).epsilon(1e-9));
}

TEST_CASE("Welch interval on log values matches scipy's ttest_ind(equal_var=False)", "[baseline]") {
    const std::vector<double> current = {1.30, 1.42, 1.35, 1.38, 1.29};
    const std::vector<double> baseline = {1.20, 1.25, 1.31, 1.18, 1.22, 1.27, 1.24};
    const auto w = welch_log_interval(baseline, current, 0.95);
    CHECK(w.df == Approx(7.4747078411468).epsilon(1e-9));
    CHECK(std::log(w.low) == Approx(0.04067036708160783).epsilon(1e-8));
    CHECK(std::log(w.high) == Approx(0.17818677577553504).epsilon(1e-8));
    CHECK(w.estimate == Approx(std::exp(1.348 - 1.2385714285714286)));
    CHECK(w.n_baseline == 7);
    CHECK(w.n_current == 5);
    CHECK_THROWS_AS(welch_log_interval({1.0}, current, 0.95), std::invalid_argument);
    CHECK_THROWS_AS(welch_log_interval(baseline, current, 1.0), std::invalid_argument);
    CHECK_THROWS_AS(welch_log_interval(baseline, {1.0, std::nan("")}, 0.95), std::invalid_argument);
}

TEST_CASE("baseline decision: fail, pass and indeterminate on synthetic runs", "[baseline]") {
    const RunSample base = run(4.0, spread);
    SECTION("the saving shrank from 4x to 2.8x: fail") {
        const auto c = compare_to_baseline(base, run(2.8, spread));
        CHECK(c.outcome == Outcome::fail);
        CHECK(c.saving.interval.estimate == Approx(0.7));
        CHECK(c.saving.interval.high < 0.9);
        CHECK(c.baseline_ratio == Approx(4.0 * std::exp(mean(spread))));
        CHECK_THAT(c.reason, Catch::Contains("ratio 2.8") && Catch::Contains("vs 4.0") &&
                                 Catch::Contains("-30.0%") && Catch::Contains("ratio - 1"));
    }
    SECTION("unchanged: pass") {
        const auto c = compare_to_baseline(base, run(4.0, spread));
        CHECK(c.outcome == Outcome::pass);
        CHECK(c.saving.interval.estimate == Approx(1.0));
        CHECK(c.saving.interval.low >= 0.9);
        CHECK(c.fix.empty());
    }
    SECTION("a faster cache is no regression") {
        CHECK(compare_to_baseline(base, run(6.0, spread)).outcome == Outcome::pass);
    }
    SECTION("noisy pairs near the bar: indeterminate, and the pairs it names decide") {
        // A baseline of 40 pairs, a current run of 4, both with a spread of about 0.1 in ln ratio.
        std::vector<double> wide;
        for (int k = 0; k < 4; ++k)
            for (double o : spread) wide.push_back(3 * o);
        const RunSample noisy_base = run(4.0, wide);
        const std::vector<double> four(wide.begin(), wide.begin() + 4);
        const auto c = compare_to_baseline(noisy_base, run(4.0 * 0.97, four));
        REQUIRE(c.outcome == Outcome::indeterminate);
        REQUIRE(c.saving.pairs_needed > 4);
        CHECK_THAT(c.fix, Catch::Contains("more pairs in this run: about " + std::to_string(c.saving.pairs_needed)));
        // The baseline keeps its pairs; the current run repeats its pattern up to that many.
        std::vector<double> more;
        while (static_cast<int>(more.size()) < c.saving.pairs_needed) more.push_back(four[more.size() % four.size()]);
        const auto decided = compare_to_baseline(noisy_base, run(4.0 * 0.97, more));
        CHECK(decided.outcome == Outcome::pass);
        // Not wildly more than needed either: the fewest pairs of that pattern that decide.
        int fewest = 5;
        for (std::vector<double> p; fewest <= c.saving.pairs_needed; ++fewest) {
            p.assign(four.begin(), four.end());
            while (static_cast<int>(p.size()) < fewest) p.push_back(four[p.size() % four.size()]);
            if (compare_to_baseline(noisy_base, run(4.0 * 0.97, p)).outcome == Outcome::pass) break;
        }
        INFO("named " << c.saving.pairs_needed << ", fewest that decide " << fewest);
        CHECK(c.saving.pairs_needed >= fewest);  // the repeated pattern's spread is a little smaller
        CHECK(c.saving.pairs_needed <= fewest * 3 / 2);
    }
    SECTION("a small noisy baseline: more current pairs cannot decide, the baseline must grow too") {
        const RunSample small_base = run(4.0, {-0.2, 0.2});
        const auto c = compare_to_baseline(small_base, run(3.8, spread));
        REQUIRE(c.outcome == Outcome::indeterminate);
        CHECK_THAT(c.fix, Catch::Contains("the baseline's 2 pairs alone"));
    }
    SECTION("an estimate exactly on the bar") {
        const auto c = compare_to_baseline(base, run(4.0 * 0.9, spread));
        CHECK(c.outcome == Outcome::indeterminate);
        CHECK_THAT(c.fix, Catch::Contains("sits on the bar"));
        CHECK(c.saving.pairs_needed == 0);
    }
}

TEST_CASE("the hit-TTFT comparison: reported always, decisive only when asked", "[baseline]") {
    // Hits and misses both 30 % slower: the ratio holds, the cached path is slower.
    const RunSample base = run(4.0, spread, 100);
    const RunSample slower = run(4.0, spread, 130);
    const auto c = compare_to_baseline(base, slower);
    CHECK(c.saving.outcome == Outcome::pass);
    CHECK(c.hit_ttft.outcome == Outcome::fail);
    CHECK(c.hit_ttft.interval.estimate == Approx(1.3));
    CHECK(c.hit_ttft.bar == Approx(1 / 0.9));
    CHECK(c.outcome == Outcome::pass);
    BaselineSettings gate;
    gate.gate_hit_ttft = true;
    const auto g = compare_to_baseline(base, slower, gate);
    CHECK(g.outcome == Outcome::fail);
    CHECK_THAT(g.reason, Catch::Contains("hit TTFT"));
    CHECK(compare_to_baseline(base, run(4.0, spread, 101), gate).outcome == Outcome::pass);
}

TEST_CASE("baseline errors: too few pairs, no spread, misuse", "[baseline]") {
    const RunSample base = run(4.0, spread);
    const auto few = compare_to_baseline(base, run(4.0, {0.01}));
    CHECK(few.outcome == Outcome::error);
    CHECK_THAT(few.reason, Catch::Contains("baseline 10, current 1"));
    // Two identical pairs in each run: a zero-width interval must not pass.
    const auto flat = compare_to_baseline(run(4.0, {0, 0}), run(4.0, {0, 0}));
    CHECK(flat.outcome == Outcome::error);
    CHECK_THAT(flat.reason, Catch::Contains("no spread"));
    BaselineSettings bad;
    bad.regression_pct = 0;
    CHECK_THROWS_AS(compare_to_baseline(base, base, bad), std::invalid_argument);
    bad.regression_pct = 10;
    bad.confidence = 95;
    CHECK_THROWS_AS(compare_to_baseline(base, base, bad), std::invalid_argument);
    RunSample uneven = base;
    uneven.hit_ttft_ms.pop_back();
    CHECK_THROWS_AS(compare_to_baseline(base, uneven), std::invalid_argument);
}

TEST_CASE("run_sample pairs TTFTs and counts the pairs it cannot use", "[baseline]") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const auto s = run_sample({100, 0, 120, nan, 110}, {400, 380, -1, 390, 440});
    CHECK(s.dropped_pairs == 3);
    REQUIRE(s.log_ratios.size() == 2);
    CHECK(s.log_ratios[0] == Approx(std::log(4.0)));
    CHECK(s.log_ratios[1] == Approx(std::log(4.0)));
    CHECK(s.hit_ttft_ms == std::vector<double>{100, 110});
    CHECK_THROWS_WITH(run_sample({1, 2}, {3}), Catch::Contains("2 hits but 1 misses"));
}

TEST_CASE("baseline refusal: a different model, sizes, engine or endpoint", "[baseline]") {
    RunIdentity b{"opt-125m", "vllm", "/v1/chat/completions", 1, 512, 256, 32, 1};
    CHECK(check_comparable(b, b, false).empty());
    RunIdentity c = b;
    c.model = "qwen2.5-0.5b";
    c.context_size_a = 1024;
    CHECK_THROWS_AS(check_comparable(b, c, false), std::invalid_argument);
    CHECK_THROWS_WITH(check_comparable(b, c, false),
                      Catch::Contains("model (baseline 'opt-125m', current 'qwen2.5-0.5b')") &&
                          Catch::Contains("context_size_a (baseline 512, current 1024)") &&
                          Catch::Contains("allow_incomparable"));
    CHECK(check_comparable(b, c, true).size() == 2);
    for (auto edit : {+[](RunIdentity& r) { r.engine = "llama.cpp"; }, +[](RunIdentity& r) { r.endpoint = "in-process"; },
                      +[](RunIdentity& r) { r.phase = 2; }, +[](RunIdentity& r) { r.context_size_b = 1; },
                      +[](RunIdentity& r) { r.query_size = 1; }, +[](RunIdentity& r) { r.max_output_tokens = 8; },
                      +[](RunIdentity& r) { r.ttft = "engine"; }}) {
        RunIdentity d = b;
        edit(d);
        CHECK(identity_differences(b, d).size() == 1);
    }
}

TEST_CASE("false alarms: the design's rate and a simulation agree", "[baseline]") {
    // Fail is a one-sided test at (1 - confidence) / 2: when the saving shrank by exactly the
    // threshold, the gate fails 2.5 % of the time at 95 %.
    CHECK(alarm_probability(0.9, 0.9, 0.05, 18, 0.95) == Approx(0.025).epsilon(1e-6));
    const double healthy = alarm_probability(1.0, 0.9, 0.05, 18, 0.95);
    CHECK(healthy < 0.025);
    CHECK(healthy < alarm_probability(1.0, 0.9, 0.08, 18, 0.95));

    // Simulated runs of 10 pairs each, log ratios normal with sd 0.12.
    std::mt19937_64 rng(20261129);
    std::normal_distribution<double> noise(0, 0.12);
    auto draw = [&](double ratio) {
        RunSample s;
        for (int i = 0; i < 10; ++i) {
            s.log_ratios.push_back(std::log(4.0 * ratio) + noise(rng));
            s.hit_ttft_ms.push_back(100);
        }
        return s;
    };
    const int sims = 2000;
    int at_bar = 0, at_one = 0;
    for (int i = 0; i < sims; ++i) {
        if (compare_to_baseline(draw(1.0), draw(0.9)).outcome == Outcome::fail) ++at_bar;
        if (compare_to_baseline(draw(1.0), draw(1.0)).outcome == Outcome::fail) ++at_one;
    }
    // Binomial sd at 2.5 % over 2000 runs is 0.35 %; Welch's df approximation adds a little.
    CHECK(at_bar / double(sims) == Approx(0.025).margin(0.011));
    const double se = 0.12 * std::sqrt(2.0 / 10);
    const double predicted = alarm_probability(1.0, 0.9, se, 18, 0.95);
    CHECK(at_one / double(sims) == Approx(predicted).margin(0.006));
    CHECK(at_one < at_bar);
}
