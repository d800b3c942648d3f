#include <catch2/catch.hpp>

#include <cmath>

#include "kvgate/stats/stats.hpp"

using namespace kvgate;

TEST_CASE("descriptive statistics match numpy's definitions", "[stats]") {
    const std::vector<double> xs = {4, 1, 3, 2, 10};
    CHECK(mean(xs) == Approx(4.0));
    CHECK(median(xs) == Approx(3.0));
    CHECK(stdev(xs) == Approx(3.5355339));  // sample (n-1), numpy ddof=1
    CHECK(quantile(xs, 0.9) == Approx(7.6));  // numpy.percentile(xs, 90), linear
    CHECK(median({1, 2, 3, 4}) == Approx(2.5));
    CHECK(stdev({5}) == 0);
    CHECK(mean({}) == 0);
}

TEST_CASE("Student's t quantiles match published tables", "[stats]") {
    CHECK(student_t_quantile(0.975, 9) == Approx(2.262157).epsilon(1e-5));
    CHECK(student_t_quantile(0.975, 1) == Approx(12.7062).epsilon(1e-4));
    CHECK(student_t_quantile(0.95, 30) == Approx(1.697261).epsilon(1e-5));
    CHECK(student_t_quantile(0.5, 4) == Approx(0).margin(1e-6));
    CHECK(student_t_cdf(-2.262157, 9) == Approx(0.025).epsilon(1e-4));
    CHECK_THROWS_AS(student_t_quantile(1.0, 3), std::invalid_argument);
}

TEST_CASE("paired ratio interval", "[stats]") {
    SECTION("a constant ratio gives a zero-width interval at that ratio") {
        const auto ci = paired_ratio_interval({10, 20, 40}, {30, 60, 120}, 0.95);
        CHECK(ci.n == 3);
        CHECK(ci.ratio == Approx(3.0));
        CHECK(ci.low == Approx(3.0));
        CHECK(ci.high == Approx(3.0));
    }
    SECTION("the interval is the t interval of the log ratios, mapped back") {
        const std::vector<double> hit = {10, 10, 10, 10};
        const std::vector<double> miss = {20, 25, 15, 30};
        const auto ci = paired_ratio_interval(hit, miss, 0.95);
        std::vector<double> logs = {std::log(2.0), std::log(2.5), std::log(1.5), std::log(3.0)};
        const double half = 3.182446 * stdev(logs) / 2;  // t(0.975, 3) * s / sqrt(4)
        CHECK(ci.ratio == Approx(std::exp(mean(logs))));
        CHECK(ci.low == Approx(std::exp(mean(logs) - half)).epsilon(1e-5));
        CHECK(ci.high == Approx(std::exp(mean(logs) + half)).epsilon(1e-5));
        CHECK(ci.low < ci.ratio);
        CHECK(ci.ratio < ci.high);
    }
    SECTION("fewer than two usable pairs give no interval") {
        CHECK(paired_ratio_interval({10}, {20}, 0.95).n == 1);
        CHECK(paired_ratio_interval({0, 10}, {5, 20}, 0.95).n == 1);  // a zero TTFT is not a sample
    }
    SECTION("arms of different lengths are misuse") {
        CHECK_THROWS_AS(paired_ratio_interval({1, 2}, {1}, 0.95), std::invalid_argument);
    }
}
