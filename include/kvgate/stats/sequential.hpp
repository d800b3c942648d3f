// The sequential decision: the interval is looked at after every measured round from the configured
// number of rounds up to a cap, and each look may decide. Knows no engine, no record.
//
// Method: alpha spending with Bonferroni's bound. A contrast's error budget alpha = 1 - confidence is
// split over the looks it may take: half at the first look (the configured rounds, where a healthy
// run decides), the other half over every later look up to the cap, each look's share growing with the
// square of the rounds added since the first (quadratic spending). The chance that
// any look's interval misses the true ratio is at most the sum of the shares, alpha, however the looks
// stop, so the interval stays valid when it is looked at after every round. Chosen over a confidence
// sequence because it needs no variance bound and loses little at the first look (97.5 % instead of
// 95 %), where runs decide.
//
// Each look's interval is the sign test's, on the median paired ratio: the order statistics that
// Binomial(n, 1/2) puts the look's share of alpha outside. It assumes only independent rounds, no
// distribution. A stall (a request at 3-8x its arm, seen in healthy runs: four hits in a row once)
// moves one ratio, not the interval's ends, where a t interval on the mean widens with every stall
// until a healthy run cannot pass (simulated: 84 % of healthy gates red with a four-hit burst). A
// cached path that is slow every time puts every ratio below the bar, and still fails. With 15 % of
// rounds flipped below the bar by stalls, the chance of ending undecided at 40 rounds is 2.4 % with
// quadratic spending against 4.8 % with even shares (exact binomial recursion over the looks).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kvgate/stats/stats.hpp"

namespace kvgate {

struct SequentialPlan {
    int first_look = 10;    // rounds at the first look: the configured trials
    int last_look = 40;     // the cap; equal to first_look: one look with the whole alpha
    double confidence = 0.95;
};

enum class Side { above, below, straddles };  // the interval against the bar

// The confidence of the interval taken after `rounds` rounds.
inline double look_confidence(const SequentialPlan& plan, int rounds) {
    if (plan.first_look < 2 || plan.last_look < plan.first_look || !(plan.confidence > 0 && plan.confidence < 1))
        throw std::invalid_argument("SequentialPlan: first_look >= 2, last_look >= first_look, confidence in (0,1)");
    const double alpha = 1 - plan.confidence;
    if (plan.last_look == plan.first_look) return plan.confidence;
    if (rounds <= plan.first_look) return 1 - alpha / 2;
    // The later looks' half grows with the square of the rounds added: a sign test at a small share
    // cannot decide at all a few rounds past the first look, so alpha is spent where it can be used.
    const int later = plan.last_look - plan.first_look, j = std::min(rounds, plan.last_look) - plan.first_look;
    const double weights = later * (later + 1.0) * (2.0 * later + 1) / 6;  // sum of squares 1..later
    return 1 - alpha / 2 * j * j / weights;
}

// P(X <= k) for X ~ Binomial(n, 1/2).
inline double binomial_half_cdf(int k, int n) {
    if (k < 0) return 0;
    double sum = 0;
    for (int i = 0; i <= std::min(k, n); ++i)
        sum += std::exp(std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) - n * std::log(2.0));
    return std::min(1.0, sum);
}

// The sign test's interval for the median of paired other/hit ratios at `confidence`: [x(k), x(n-k+1)]
// of the sorted ratios, k the largest with P(Binomial(n, 1/2) <= k - 1) <= (1 - confidence) / 2. Too few
// pairs for any k: the interval is (0, inf), which decides nothing. `ratio` is the median paired ratio;
// log_mean and log_stdev describe the log ratios (the fix's estimate of rounds, the zero-width check).
inline RatioInterval median_ratio_interval(const std::vector<double>& hit, const std::vector<double>& other,
                                           double confidence) {
    RatioInterval r;
    std::vector<double> logs = paired_log_ratios(hit, other, r);
    if (r.n < 2) return RatioInterval{r.n, r.dropped};
    std::sort(logs.begin(), logs.end());
    r.ratio = std::exp(median(logs));
    int k = 0;
    while (k + 1 <= r.n / 2 && binomial_half_cdf(k, r.n) <= (1 - confidence) / 2) ++k;
    r.low = k > 0 ? std::exp(logs[k - 1]) : 0;
    r.high = k > 0 ? std::exp(logs[r.n - k]) : std::numeric_limits<double>::infinity();
    return r;
}

// The interval on other/hit over paired samples at the look `hit.size()` rounds make.
inline RatioInterval sequential_interval(const std::vector<double>& hit, const std::vector<double>& other,
                                         const SequentialPlan& plan) {
    return median_ratio_interval(hit, other, look_confidence(plan, static_cast<int>(hit.size())));
}

// Where an interval lies against the bar. Strictly: a bound on the bar has not cleared it.
inline Side side_of(const RatioInterval& ci, double bar) {
    if (ci.low > bar) return Side::above;
    if (ci.high < bar) return Side::below;
    return Side::straddles;
}

// The fewest rounds whose sign-test interval can decide at `confidence`: all n ratios on one side.
inline int rounds_to_decide(double confidence) {
    int n = 1;
    while (std::pow(0.5, n) > (1 - confidence) / 2) ++n;
    return n;
}

// Rounds that would separate an interval of this spread from the bar, at the later looks' confidence, as
// a normal approximation puts it (a guide for the fix, not the decision): n with t * sd / sqrt(n) <
// |mean - ln bar|. 0 when the estimate sits on the bar.
inline int rounds_to_separate(const RatioInterval& ci, double bar, const SequentialPlan& plan) {
    const double gap = std::fabs(ci.log_mean - std::log(bar));
    if (gap < 1e-9 || ci.n < 2) return 0;
    const double t = student_t_quantile(0.5 + look_confidence(plan, plan.last_look) / 2, std::max(1, ci.n - 1));
    return static_cast<int>(std::ceil(std::pow(t * ci.log_stdev / gap, 2)));
}

}  // namespace kvgate
