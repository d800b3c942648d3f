// Descriptive statistics and the paired interval on the miss/hit TTFT ratio. Knows no engine.
//
// Interval method: hit and miss trials are run in pairs (ABBA order), so each pair gives one ratio
// r_i = miss_i / hit_i. Ratios are multiplicative, so the interval is Student's t on ln r_i,
// mapped back with exp: a confidence interval for the geometric mean of the paired ratios.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace kvgate {

inline double mean(const std::vector<double>& xs) {
    if (xs.empty()) return 0;
    return std::accumulate(xs.begin(), xs.end(), 0.0) / static_cast<double>(xs.size());
}

// Sample standard deviation (n - 1); 0 for fewer than two values.
inline double stdev(const std::vector<double>& xs) {
    if (xs.size() < 2) return 0;
    const double m = mean(xs);
    double ss = 0;
    for (double x : xs) ss += (x - m) * (x - m);
    return std::sqrt(ss / static_cast<double>(xs.size() - 1));
}

// Linear interpolation between closest ranks (type 7, as numpy's default); q in [0, 1].
inline double quantile(std::vector<double> xs, double q) {
    if (xs.empty()) return 0;
    std::sort(xs.begin(), xs.end());
    const double pos = q * static_cast<double>(xs.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const auto hi = std::min(lo + 1, xs.size() - 1);
    return xs[lo] + (pos - static_cast<double>(lo)) * (xs[hi] - xs[lo]);
}

inline double median(const std::vector<double>& xs) { return quantile(xs, 0.5); }

namespace detail {

// Continued fraction of the regularized incomplete beta function (Lentz's method).
inline double beta_continued_fraction(double a, double b, double x) {
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    d = 1 / (std::fabs(d) < tiny ? tiny : d);
    double h = d;
    for (int m = 1; m <= 300; ++m) {
        const double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        d = 1 + aa * d;
        d = 1 / (std::fabs(d) < tiny ? tiny : d);
        c = 1 + aa / c;
        if (std::fabs(c) < tiny) c = tiny;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        d = 1 + aa * d;
        d = 1 / (std::fabs(d) < tiny ? tiny : d);
        c = 1 + aa / c;
        if (std::fabs(c) < tiny) c = tiny;
        const double delta = d * c;
        h *= delta;
        if (std::fabs(delta - 1) < 1e-14) break;
    }
    return h;
}

inline double regularized_incomplete_beta(double a, double b, double x) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) +
                                  b * std::log(1 - x));
    if (x < (a + 1) / (a + b + 2)) return front * beta_continued_fraction(a, b, x) / a;
    return 1 - front * beta_continued_fraction(b, a, 1 - x) / b;
}

}  // namespace detail

// P(T <= t) for Student's t with df degrees of freedom.
inline double student_t_cdf(double t, double df) {
    const double tail = 0.5 * detail::regularized_incomplete_beta(df / 2, 0.5, df / (df + t * t));
    return t >= 0 ? 1 - tail : tail;
}

// The t with P(T <= t) = p, by bisection (monotone, and precise enough for an interval bound).
inline double student_t_quantile(double p, double df) {
    if (!(p > 0 && p < 1) || !(df > 0)) throw std::invalid_argument("student_t_quantile: p in (0,1), df > 0");
    double lo = -1e3, hi = 1e3;
    for (int i = 0; i < 200 && hi - lo > 1e-10; ++i) {
        const double mid = 0.5 * (lo + hi);
        (student_t_cdf(mid, df) < p ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi);
}

struct RatioInterval {
    int n = 0;
    int dropped = 0;   // pairs left out: a TTFT that is not a positive number (0, negative, NaN)
    double ratio = 0;  // geometric mean of the paired ratios
    double low = 0, high = 0;
    double log_mean = 0, log_stdev = 0;
};

// ln(other/hit) of each pair with positive values, with n, log_mean and log_stdev filled in; pairs with
// any other value are counted in `dropped`, never left out silently.
inline std::vector<double> paired_log_ratios(const std::vector<double>& hit, const std::vector<double>& other,
                                             RatioInterval& r) {
    if (hit.size() != other.size()) throw std::invalid_argument("paired ratios: arms differ in length");
    std::vector<double> logs;
    for (std::size_t i = 0; i < hit.size(); ++i) {
        if (hit[i] > 0 && other[i] > 0 && std::isfinite(hit[i]) && std::isfinite(other[i]))
            logs.push_back(std::log(other[i] / hit[i]));
        else
            ++r.dropped;
    }
    r.n = static_cast<int>(logs.size());
    r.log_mean = mean(logs);
    r.log_stdev = stdev(logs);
    return logs;
}

// Student's t interval on miss/hit from paired samples; needs at least two pairs with positive values.
inline RatioInterval paired_ratio_interval(const std::vector<double>& hit, const std::vector<double>& miss,
                                           double confidence) {
    RatioInterval r;
    paired_log_ratios(hit, miss, r);
    if (r.n < 2) return RatioInterval{r.n, r.dropped};
    const double half = student_t_quantile(0.5 + confidence / 2, r.n - 1) * r.log_stdev / std::sqrt(double(r.n));
    r.ratio = std::exp(r.log_mean);
    r.low = std::exp(r.log_mean - half);
    r.high = std::exp(r.log_mean + half);
    return r;
}

}  // namespace kvgate
