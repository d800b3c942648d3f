// The invalidation-cost model: TTFT = t0 + a*R + b*R*C, fitted by least squares, with intervals.
//
//   R  recomputed prompt tokens (the measured prompt's tokens minus the reused ones);
//   C  the context each recomputed token attends to, on average: the reused prefix plus half the
//      recomputed part, C = reuse + (R + 1) / 2 (attended_context). With it R*C is exactly the
//      number of query-key pairs the recompute's causal attention computes
//      (sum over i = 1..R of reuse + i), so b is the cost of one such pair: a miss (no reuse) and
//      a recompute after a long kept prefix are both covered by the one term.
//   t0 the fixed part (request handling, scheduling, the first decode step);
//   a  the cost per recomputed token that does not depend on context (MLPs, projections).
//
// Model selection: b is dropped when its t interval (at the fit's confidence) includes 0. For a
// single coefficient that is the partial F-test of the full against the linear model at
// alpha = 1 - confidence (F = t^2 with 1 and n - 3 degrees of freedom), so one rule states both.
//
// The solve is Householder QR on the design with unit-norm columns (the R*C column is ~1e5 times
// the intercept's), never the normal equations, whose condition number is the square of the
// design's. Pure: no engine, no I/O.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvgate/stats/stats.hpp"

namespace kvgate {

struct CostObservation {
    double recompute_tokens = 0;  // R
    double context_tokens = 0;    // C, see attended_context
    double ttft_ms = 0;
};

// C for a request that reused `reuse_tokens` and recomputed `recompute_tokens`.
inline double attended_context(double reuse_tokens, double recompute_tokens) {
    return reuse_tokens + (recompute_tokens + 1) / 2;
}

enum class CostTerms { linear, attention };  // t0 + a*R, or t0 + a*R + b*R*C

struct Coefficient {
    double estimate = 0, std_error = 0, low = 0, high = 0;  // low/high: t interval at the fit's confidence
    bool covers(double x) const { return low <= x && x <= high; }
};

struct CostFit {
    std::string problem;  // empty when the fit stands; otherwise why the data cannot give it
    CostTerms terms = CostTerms::linear;
    int n = 0, dof = 0;  // observations; residual degrees of freedom (n - parameters)
    double confidence = 0.95;
    double t_quantile = 0;  // Student's t at (1 + confidence) / 2 with dof
    Coefficient fixed_ms;              // t0
    Coefficient ms_per_token;          // a
    Coefficient ms_per_token_context;  // b (all zero when the linear model is fitted)
    std::array<std::array<double, 3>, 3> covariance{};  // of (t0, a, b); b's row and column 0 when dropped
    double residual_sd = 0;  // sqrt(SSE / dof), ms
    double r_squared = 0;
    std::vector<double> residuals;  // observed - fitted, in the observations' order
    std::string selection;          // why b is in the model or not (fit_cost_model)

    bool ok() const { return problem.empty(); }
    bool attention_term() const { return terms == CostTerms::attention; }
};

namespace detail {

inline double dot_from(const std::vector<double>& u, const std::vector<double>& v, std::size_t from) {
    double s = 0;
    for (std::size_t i = from; i < u.size(); ++i) s += u[i] * v[i];
    return s;
}

}  // namespace detail

inline CostFit fit_cost(const std::vector<CostObservation>& obs, CostTerms terms, double confidence = 0.95) {
    if (!(confidence > 0 && confidence < 1))
        throw std::invalid_argument("fit_cost: confidence " + std::to_string(confidence) + " is outside (0, 1); give e.g. 0.95");
    CostFit f;
    f.terms = terms;
    f.confidence = confidence;
    f.n = static_cast<int>(obs.size());
    const std::size_t p = terms == CostTerms::attention ? 3 : 2;
    const std::size_t n = obs.size();
    f.dof = f.n - static_cast<int>(p);
    if (f.dof < 1) {
        f.problem = std::to_string(n) + " observations for " + std::to_string(p) +
                    " coefficients: need at least one more than the coefficients to estimate the noise";
        return f;
    }
    // Columns of the design, then scaled to unit norm.
    std::vector<std::vector<double>> x(p, std::vector<double>(n));
    std::vector<double> y(n);
    for (std::size_t i = 0; i < n; ++i) {
        const auto& o = obs[i];
        if (!std::isfinite(o.recompute_tokens) || !std::isfinite(o.context_tokens) || !std::isfinite(o.ttft_ms)) {
            f.problem = "observation " + std::to_string(i) + " is not a finite number";
            return f;
        }
        x[0][i] = 1;
        x[1][i] = o.recompute_tokens;
        if (p == 3) x[2][i] = o.recompute_tokens * o.context_tokens;
        y[i] = o.ttft_ms;
    }
    const std::array<const char*, 3> names = {"the fixed part", "recomputed tokens", "recomputed tokens x context"};
    std::array<double, 3> scale{};
    for (std::size_t j = 0; j < p; ++j) {
        scale[j] = std::sqrt(detail::dot_from(x[j], x[j], 0));
        if (scale[j] == 0) {
            f.problem = std::string("every observation has zero ") + names[j] + ": the data cannot estimate it";
            return f;
        }
        for (double& v : x[j]) v /= scale[j];
    }
    // Householder QR: x becomes R above the diagonal (r_diag on it), qty = Q'y.
    std::vector<double> qty = y;
    std::array<double, 3> r_diag{};
    for (std::size_t j = 0; j < p; ++j) {
        const double norm = std::sqrt(detail::dot_from(x[j], x[j], j));
        const double alpha = x[j][j] > 0 ? -norm : norm;
        // Columns are unit norm, so a tiny remainder means column j is (nearly) a combination of
        // the ones before it.
        if (norm < 1e-9) {
            f.problem = std::string("the observations cannot separate ") + names[j] +
                        " from the terms before it (collinear: vary recompute and context independently)";
            return f;
        }
        std::vector<double> v(n, 0);
        for (std::size_t i = j; i < n; ++i) v[i] = x[j][i];
        v[j] -= alpha;
        const double vv = detail::dot_from(v, v, j);
        for (std::size_t c = j; c < p; ++c) {
            const double k = 2 * detail::dot_from(v, x[c], j) / vv;
            for (std::size_t i = j; i < n; ++i) x[c][i] -= k * v[i];
        }
        const double k = 2 * detail::dot_from(v, qty, j) / vv;
        for (std::size_t i = j; i < n; ++i) qty[i] -= k * v[i];
        r_diag[j] = alpha;
    }
    auto r_at = [&](std::size_t row, std::size_t col) { return row == col ? r_diag[row] : x[col][row]; };
    // R^-1 (upper triangular), then beta = R^-1 Q'y and (X'X)^-1 = R^-1 R^-T, all in scaled units.
    std::array<std::array<double, 3>, 3> rinv{};
    for (std::size_t c = 0; c < p; ++c) {
        rinv[c][c] = 1 / r_at(c, c);
        for (std::size_t rr = c; rr-- > 0;) {
            double s = 0;
            for (std::size_t k = rr + 1; k <= c; ++k) s += r_at(rr, k) * rinv[k][c];
            rinv[rr][c] = -s / r_at(rr, rr);
        }
    }
    std::array<double, 3> beta{};
    for (std::size_t j = 0; j < p; ++j) {
        for (std::size_t k = j; k < p; ++k) beta[j] += rinv[j][k] * qty[k];
        beta[j] /= scale[j];
    }
    double sse = 0, sst = 0;
    const double y_mean = mean(y);
    f.residuals.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const auto& o = obs[i];
        const double fitted = beta[0] + beta[1] * o.recompute_tokens + beta[2] * o.recompute_tokens * o.context_tokens;
        f.residuals[i] = o.ttft_ms - fitted;
        sse += f.residuals[i] * f.residuals[i];
        sst += (o.ttft_ms - y_mean) * (o.ttft_ms - y_mean);
    }
    const double sigma2 = sse / f.dof;
    f.residual_sd = std::sqrt(sigma2);
    f.r_squared = sst > 0 ? 1 - sse / sst : 1;  // sst = 0: constant data, fitted exactly by t0
    for (std::size_t a = 0; a < p; ++a)
        for (std::size_t b = 0; b < p; ++b) {
            double s = 0;
            for (std::size_t k = std::max(a, b); k < p; ++k) s += rinv[a][k] * rinv[b][k];
            f.covariance[a][b] = sigma2 * s / (scale[a] * scale[b]);
        }
    f.t_quantile = student_t_quantile(0.5 + confidence / 2, f.dof);
    std::array<Coefficient*, 3> out = {&f.fixed_ms, &f.ms_per_token, &f.ms_per_token_context};
    for (std::size_t j = 0; j < p; ++j) {
        auto& c = *out[j];
        c.estimate = beta[j];
        c.std_error = std::sqrt(f.covariance[j][j]);
        c.low = c.estimate - f.t_quantile * c.std_error;
        c.high = c.estimate + f.t_quantile * c.std_error;
    }
    return f;
}

// Fits the full model and keeps b only when its interval excludes 0 (see the top of this file);
// `selection` says which and why. When the full model cannot be fitted (e.g. C does not vary
// apart from R), the linear one is, and `selection` names the reason.
inline CostFit fit_cost_model(const std::vector<CostObservation>& obs, double confidence = 0.95) {
    const CostFit full = fit_cost(obs, CostTerms::attention, confidence);
    auto fmt = [](double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3g", v);
        return std::string(buf);
    };
    if (full.ok()) {
        const auto& b = full.ms_per_token_context;
        const std::string interval = fmt(confidence * 100) + "% interval of b [" + fmt(b.low) + ", " + fmt(b.high) + "] ms";
        if (!b.covers(0)) {
            CostFit f = full;
            f.selection = "b kept: its " + interval + " excludes 0";
            return f;
        }
        CostFit f = fit_cost(obs, CostTerms::linear, confidence);
        f.selection = "b dropped: its " + interval + " includes 0 (partial F = " + fmt(b.estimate * b.estimate / (b.std_error * b.std_error)) +
                      " on 1 and " + std::to_string(full.dof) + " df)";
        return f;
    }
    CostFit f = fit_cost(obs, CostTerms::linear, confidence);
    f.selection = "b not fitted: " + full.problem;
    return f;
}

struct CostInterval {
    double estimate = 0, low = 0, high = 0;
};

// w0*t0 + w1*a + w2*b with its t interval (the coefficients' covariance carried through).
inline CostInterval linear_combination(const CostFit& f, double w0, double w1, double w2) {
    if (!f.ok()) throw std::invalid_argument("linear_combination: the fit has a problem (" + f.problem + "); check ok() first");
    const std::array<double, 3> w = {w0, w1, f.attention_term() ? w2 : 0};
    const std::array<double, 3> beta = {f.fixed_ms.estimate, f.ms_per_token.estimate, f.ms_per_token_context.estimate};
    CostInterval r;
    double var = 0;
    for (std::size_t i = 0; i < 3; ++i) {
        r.estimate += w[i] * beta[i];
        for (std::size_t j = 0; j < 3; ++j) var += w[i] * w[j] * f.covariance[i][j];
    }
    const double half = f.t_quantile * std::sqrt(std::max(0.0, var));
    r.low = r.estimate - half;
    r.high = r.estimate + half;
    return r;
}

// The average cost of a recomputed token that attends to `context_tokens` (a + b*C): what one more
// token of recompute costs at that context. Without the b term, a.
inline CostInterval cost_per_token(const CostFit& f, double context_tokens) {
    return linear_combination(f, 0, 1, context_tokens);
}

struct CostPrediction {
    double ttft_ms = 0;
    double mean_low = 0, mean_high = 0;  // where the mean TTFT at this point lies
    double low = 0, high = 0;            // where one new measurement at this point should fall
};

// TTFT at (R, C) with the confidence interval of the mean and the prediction interval of a single
// new request (the residual noise added): e.g. Experiment 1's miss, R = its prompt tokens, C =
// attended_context(0, R), is predicted by the curve and compared with what was measured.
inline CostPrediction predict(const CostFit& f, double recompute_tokens, double context_tokens) {
    const auto mean = linear_combination(f, 1, recompute_tokens, recompute_tokens * context_tokens);
    CostPrediction p;
    p.ttft_ms = mean.estimate;
    p.mean_low = mean.low;
    p.mean_high = mean.high;
    const double mean_se = f.t_quantile > 0 ? (mean.high - mean.estimate) / f.t_quantile : 0;
    const double half = f.t_quantile * std::sqrt(mean_se * mean_se + f.residual_sd * f.residual_sd);
    p.low = p.ttft_ms - half;
    p.high = p.ttft_ms + half;
    return p;
}

}  // namespace kvgate
