#include <catch2/catch.hpp>

#include <random>

#include "kvgate/stats/fit.hpp"

using namespace kvgate;

namespace {
// Experiment 2's shape of data: edits at several positions of two context lengths, so R and C vary
// apart (remove/replace: kept prefix grows as R shrinks; truncate: little prefix, R varies).
struct Truth {
    double t0, a, b;
    double at(double r, double c) const { return t0 + a * r + b * r * c; }
};

std::vector<CostObservation> sweep_like(const Truth& truth, double noise_ms, std::uint64_t seed, int repeats = 2) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0, noise_ms);
    std::vector<CostObservation> obs;
    for (int rep = 0; rep < repeats; ++rep)
        for (double ctx : {384.0, 768.0})
            for (double f : {0.0, 0.25, 0.5, 0.75, 1.0}) {
                const double kept = 64 + f * (ctx - 64), r_edit = ctx - kept + 32, r_trunc = (1 - f) * (ctx - 64) + 32;
                for (auto [reuse, r] : {std::pair{kept, r_edit}, std::pair{0.0, r_trunc + 64}, std::pair{ctx, 32.0}}) {
                    const double c = attended_context(reuse, r);
                    obs.push_back({r, c, truth.at(r, c) + noise(rng)});
                }
            }
    return obs;
}

constexpr Truth kWithAttention{82, 1.4, 4e-4};  // b*R*C is ~10-20% of a*R at these sizes
constexpr Truth kLinear{82, 1.6, 0};
}  // namespace

TEST_CASE("C counts the query-key pairs of the recompute's causal attention", "[fit]") {
    // Recomputing tokens reuse+1 .. reuse+R: token i attends to reuse + i positions.
    for (auto [reuse, r] : {std::pair{0, 1}, std::pair{0, 288}, std::pair{768, 32}, std::pair{256, 100}}) {
        double pairs = 0;
        for (int i = 1; i <= r; ++i) pairs += reuse + i;
        CHECK(r * attended_context(reuse, r) == Approx(pairs));
    }
}

TEST_CASE("noiseless data give the coefficients back exactly", "[fit]") {
    const auto obs = sweep_like(kWithAttention, 0, 1, 1);
    const auto f = fit_cost(obs, CostTerms::attention);
    REQUIRE(f.ok());
    CHECK(f.fixed_ms.estimate == Approx(82).epsilon(1e-9));
    CHECK(f.ms_per_token.estimate == Approx(1.4).epsilon(1e-9));
    CHECK(f.ms_per_token_context.estimate == Approx(4e-4).epsilon(1e-9));
    CHECK(f.r_squared == Approx(1).epsilon(1e-12));
    CHECK(f.residual_sd < 1e-9);
    CHECK(f.n == static_cast<int>(obs.size()));
    CHECK(f.dof == f.n - 3);
}

TEST_CASE("the linear fit agrees with simple regression's closed forms", "[fit]") {
    // y on x alone: slope Sxy/Sxx, se(slope) = s/sqrt(Sxx), se(intercept) = s*sqrt(1/n + mean^2/Sxx).
    const std::vector<double> xs = {10, 40, 90, 160, 250, 300}, ys = {97, 141, 221, 338, 491, 560};
    std::vector<CostObservation> obs;
    for (std::size_t i = 0; i < xs.size(); ++i) obs.push_back({xs[i], 0, ys[i]});
    const double n = 6, mx = mean(xs), my = mean(ys);
    double sxx = 0, sxy = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        sxx += (xs[i] - mx) * (xs[i] - mx);
        sxy += (xs[i] - mx) * (ys[i] - my);
    }
    const double slope = sxy / sxx, intercept = my - slope * mx;
    double sse = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) sse += std::pow(ys[i] - intercept - slope * xs[i], 2);
    const double s = std::sqrt(sse / (n - 2));
    const auto f = fit_cost(obs, CostTerms::linear, 0.95);
    REQUIRE(f.ok());
    CHECK(f.ms_per_token.estimate == Approx(slope).epsilon(1e-12));
    CHECK(f.fixed_ms.estimate == Approx(intercept).epsilon(1e-12));
    CHECK(f.ms_per_token.std_error == Approx(s / std::sqrt(sxx)).epsilon(1e-10));
    CHECK(f.fixed_ms.std_error == Approx(s * std::sqrt(1 / n + mx * mx / sxx)).epsilon(1e-10));
    CHECK(f.t_quantile == Approx(2.776445).epsilon(1e-6));  // t(0.975, 4), published tables
    CHECK(f.ms_per_token.high - f.ms_per_token.estimate == Approx(2.776445 * s / std::sqrt(sxx)).epsilon(1e-6));
    CHECK(f.residual_sd == Approx(s));
    CHECK(f.ms_per_token_context.estimate == 0);
    double sum = 0;
    for (double r : f.residuals) sum += r;
    CHECK(sum == Approx(0).margin(1e-9));  // an intercept model's residuals sum to zero
}

TEST_CASE("the fit's degrees of freedom reach the t quantiles it needs", "[fit]") {
    // A sweep gives 30-100 residual df; stats' tests cover the small ones. Published values.
    CHECK(student_t_quantile(0.975, 60) == Approx(2.000298).epsilon(1e-6));
    CHECK(student_t_quantile(0.975, 120) == Approx(1.979930).epsilon(1e-6));
    CHECK(student_t_quantile(0.995, 40) == Approx(2.704459).epsilon(1e-6));
}

TEST_CASE("noisy data: the intervals cover the truth about as often as they claim", "[fit]") {
    const auto one = fit_cost(sweep_like(kWithAttention, 10, 7), CostTerms::attention);
    REQUIRE(one.ok());
    // One data set: each estimate within 4 standard errors of the truth (fails with p ~ 1e-4; a
    // 95% interval misses 1 time in 20, which the coverage count below checks instead).
    CHECK(std::fabs(one.fixed_ms.estimate - kWithAttention.t0) < 4 * one.fixed_ms.std_error);
    CHECK(std::fabs(one.ms_per_token.estimate - kWithAttention.a) < 4 * one.ms_per_token.std_error);
    CHECK(std::fabs(one.ms_per_token_context.estimate - kWithAttention.b) < 4 * one.ms_per_token_context.std_error);
    CHECK(one.r_squared > 0.98);
    CHECK(one.residual_sd == Approx(10).epsilon(0.3));

    // 95% intervals over 400 independent data sets: coverage 0.95 +- 3 binomial sd (0.011).
    int t0_in = 0, a_in = 0, b_in = 0;
    const int runs = 400;
    for (int s = 0; s < runs; ++s) {
        const auto f = fit_cost(sweep_like(kWithAttention, 10, 1000 + s), CostTerms::attention);
        REQUIRE(f.ok());
        t0_in += f.fixed_ms.covers(kWithAttention.t0);
        a_in += f.ms_per_token.covers(kWithAttention.a);
        b_in += f.ms_per_token_context.covers(kWithAttention.b);
    }
    for (int in : {t0_in, a_in, b_in}) {
        CHECK(in >= 0.917 * runs);
        CHECK(in <= 0.983 * runs);
    }
}

TEST_CASE("b is dropped when its interval includes 0, kept when it does not", "[fit]") {
    SECTION("attention cost present: kept") {
        const auto f = fit_cost_model(sweep_like(kWithAttention, 10, 11));
        REQUIRE(f.ok());
        CHECK(f.attention_term());
        CHECK(f.ms_per_token_context.low > 0);
        CHECK(f.selection.find("b kept") == 0);
    }
    SECTION("no attention cost: dropped about 95% of the time, refitted as t0 + a*R") {
        int dropped = 0;
        const int runs = 400;
        for (int s = 0; s < runs; ++s) {
            const auto obs = sweep_like(kLinear, 10, 5000 + s);
            const auto f = fit_cost_model(obs);
            REQUIRE(f.ok());
            if (f.attention_term()) continue;
            ++dropped;
            CHECK(f.selection.find("b dropped") == 0);
            CHECK(f.dof == f.n - 2);
            CHECK(f.ms_per_token_context.estimate == 0);
            CHECK(f.covariance[2][2] == 0);
        }
        CHECK(dropped >= 0.917 * runs);
        CHECK(dropped <= 0.983 * runs);
    }
    SECTION("the rule is the partial F-test: t(b)^2 equals the F from the two fits' residuals") {
        const auto obs = sweep_like(kLinear, 10, 99);
        const auto full = fit_cost(obs, CostTerms::attention), lin = fit_cost(obs, CostTerms::linear);
        double sse_full = 0, sse_lin = 0;
        for (double r : full.residuals) sse_full += r * r;
        for (double r : lin.residuals) sse_lin += r * r;
        const double f_stat = (sse_lin - sse_full) / (sse_full / full.dof);
        const auto& b = full.ms_per_token_context;
        CHECK(f_stat == Approx(std::pow(b.estimate / b.std_error, 2)).epsilon(1e-8));
    }
    SECTION("C moving in step with R: b cannot be fitted, and the selection says why") {
        std::vector<CostObservation> obs;
        for (double r : {32.0, 100.0, 200.0, 300.0, 400.0}) obs.push_back({r, 50, 82 + 1.6 * r + (r > 150 ? 3 : -3)});
        const auto f = fit_cost_model(obs);
        REQUIRE(f.ok());
        CHECK_FALSE(f.attention_term());
        CHECK(f.selection.find("collinear") != std::string::npos);
        CHECK(f.ms_per_token.covers(1.6));
    }
}

TEST_CASE("a fit the data cannot give is a problem, not numbers", "[fit]") {
    CHECK(fit_cost({{10, 5, 100}, {20, 5, 120}}, CostTerms::linear).problem.find("need at least one more") !=
          std::string::npos);
    const auto same_r = fit_cost({{50, 5, 100}, {50, 9, 120}, {50, 7, 110}}, CostTerms::linear);
    CHECK_FALSE(same_r.ok());
    CHECK(same_r.problem.find("recomputed tokens") != std::string::npos);
    CHECK(fit_cost({{0, 5, 100}, {0, 9, 120}, {0, 7, 110}}, CostTerms::linear).problem.find("zero recomputed") !=
          std::string::npos);
    CHECK(fit_cost({{1, 5, 100}, {2, 9, std::nan("")}, {3, 7, 110}}, CostTerms::linear).problem.find("observation 1") !=
          std::string::npos);
    CHECK_THROWS_WITH(fit_cost({}, CostTerms::linear, 95), Catch::Contains("outside (0, 1)"));
    CHECK_THROWS_WITH(predict(same_r, 10, 10), Catch::Contains("check ok() first"));
}

TEST_CASE("predictions: the mean and a new request, with intervals that hold", "[fit]") {
    const auto obs = sweep_like(kWithAttention, 10, 21);
    const auto f = fit_cost(obs, CostTerms::attention);
    REQUIRE(f.ok());
    // At an observed point the prediction is the fitted value.
    const auto at0 = predict(f, obs[0].recompute_tokens, obs[0].context_tokens);
    CHECK(at0.ttft_ms == Approx(obs[0].ttft_ms - f.residuals[0]));
    CHECK(at0.mean_low < at0.ttft_ms);
    CHECK(at0.low < at0.mean_low);  // a single request scatters more than the mean
    CHECK(at0.high > at0.mean_high);

    // Experiment 1's miss: [B,Q] of 290 tokens, nothing reused. A new request there falls in the
    // 95% prediction interval ~95% of the time, over independent fits and draws.
    const double r = 290, c = attended_context(0, r);
    std::mt19937_64 rng(3);
    std::normal_distribution<double> noise(0, 10);
    int in = 0, mean_in = 0;
    const int runs = 400;
    for (int s = 0; s < runs; ++s) {
        const auto fs = fit_cost(sweep_like(kWithAttention, 10, 9000 + s), CostTerms::attention);
        const auto p = predict(fs, r, c);
        const double measured = kWithAttention.at(r, c) + noise(rng);
        in += p.low <= measured && measured <= p.high;
        mean_in += p.mean_low <= kWithAttention.at(r, c) && kWithAttention.at(r, c) <= p.mean_high;
    }
    for (int k : {in, mean_in}) {
        CHECK(k >= 0.917 * runs);
        CHECK(k <= 0.983 * runs);
    }
}

TEST_CASE("cost per recomputed token and the fixed part", "[fit]") {
    const auto f = fit_cost(sweep_like(kWithAttention, 10, 31), CostTerms::attention);
    REQUIRE(f.ok());
    const auto none = cost_per_token(f, 0);
    CHECK(none.estimate == Approx(f.ms_per_token.estimate));
    CHECK(none.low == Approx(f.ms_per_token.low));
    const auto at500 = cost_per_token(f, 500);
    CHECK(at500.estimate == Approx(f.ms_per_token.estimate + 500 * f.ms_per_token_context.estimate));
    CHECK(at500.low < kWithAttention.a + 500 * kWithAttention.b);
    CHECK(at500.high > kWithAttention.a + 500 * kWithAttention.b);
    const auto fixed = linear_combination(f, 1, 0, 0);
    CHECK(fixed.low == Approx(f.fixed_ms.low));
    CHECK(fixed.high == Approx(f.fixed_ms.high));
    // Without the b term, the context changes nothing.
    const auto lin = fit_cost(sweep_like(kLinear, 10, 31), CostTerms::linear);
    CHECK(cost_per_token(lin, 700).estimate == Approx(lin.ms_per_token.estimate));
}
