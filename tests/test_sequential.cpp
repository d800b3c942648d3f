// The sequential decision: each look's share of alpha, the sign test's interval, and what it makes of
// stalls and of a cache that is slow every time.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "kvgate/stats/sequential.hpp"

using namespace kvgate;

TEST_CASE("alpha is spent half at the first look and the rest growing with the square of the rounds added",
          "[sequential]") {
    const SequentialPlan plan{10, 40, 0.95};
    const double squares = 30 * 31 * 61 / 6.0;
    CHECK(look_confidence(plan, 10) == Approx(0.975));
    CHECK(look_confidence(plan, 11) == Approx(1 - 0.025 / squares));
    CHECK(look_confidence(plan, 40) == Approx(1 - 0.025 * 900 / squares));
    double spent = 1 - look_confidence(plan, 10);
    for (int n = 11; n <= 40; ++n) spent += 1 - look_confidence(plan, n);
    CHECK(spent == Approx(0.05));  // Bonferroni: the looks together spend alpha, no more
    CHECK(look_confidence(SequentialPlan{10, 10, 0.95}, 10) == Approx(0.95));  // one look: all of it
    CHECK_THROWS(look_confidence(SequentialPlan{1, 40, 0.95}, 1));
}

TEST_CASE("the sign test's interval is the order statistics the binomial puts alpha outside", "[sequential]") {
    CHECK(binomial_half_cdf(0, 10) == Approx(1.0 / 1024));
    CHECK(binomial_half_cdf(1, 10) == Approx(11.0 / 1024));
    CHECK(binomial_half_cdf(10, 10) == Approx(1));
    std::vector<double> hit(10, 100), other;
    for (int i = 1; i <= 10; ++i) other.push_back(100 + 10 * i);  // ratios 1.1 .. 2.0
    const auto ci = median_ratio_interval(hit, other, 0.975);
    CHECK(ci.n == 10);
    CHECK(ci.ratio == Approx(std::sqrt(1.5 * 1.6)));  // the median of the logs
    CHECK(ci.low == Approx(1.2));   // x(2): P(X <= 1) = 0.0107 <= 0.0125
    CHECK(ci.high == Approx(1.9));  // x(9)
    // Too few pairs for any order statistic: an interval that decides nothing.
    const auto few = median_ratio_interval({100, 100, 100}, {200, 210, 220}, 0.975);
    CHECK(few.low == 0);
    CHECK(std::isinf(few.high));
    CHECK(rounds_to_decide(0.975) == 7);
    CHECK(rounds_to_decide(0.95) == 6);
}

TEST_CASE("a burst of stalled hits does not move the interval's end past the bar once rounds are added",
          "[sequential]") {
    const double bar = 1.1;
    std::vector<double> hit, cold;
    for (int i = 0; i < 30; ++i) {
        hit.push_back(65 + i % 3);
        cold.push_back(190 + i % 5);
    }
    for (int i = 2; i < 6; ++i) hit[i] = 400;  // four hits in a row at 6x, as seen in a healthy run
    const SequentialPlan plan{10, 40, 0.95};
    auto at = [&](int n) {
        return sequential_interval(std::vector<double>(hit.begin(), hit.begin() + n),
                                   std::vector<double>(cold.begin(), cold.begin() + n), plan);
    };
    CHECK(side_of(at(10), bar) == Side::straddles);  // four of ten below: undecided, so rounds are added
    CHECK(side_of(at(30), bar) == Side::above);      // the stalls stay four: the median's interval clears
}

TEST_CASE("a cached path that is slow every time is below the bar", "[sequential]") {
    std::mt19937 rng(3);
    std::normal_distribution<double> noise(0, 3);
    std::vector<double> hit, cold;
    for (int i = 0; i < 10; ++i) {
        hit.push_back(190 + noise(rng));
        cold.push_back(195 + noise(rng));
    }
    CHECK(side_of(sequential_interval(hit, cold, SequentialPlan{10, 40, 0.95}), 1.1) == Side::below);
}
