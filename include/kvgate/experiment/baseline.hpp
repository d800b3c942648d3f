// Comparing a run with a baseline run from a known-good build: did the prefix cache's saving shrink?
// Pure statistics over both runs' per-pair log ratios; knows no engine and no results file.
//
// What "the saving shrank by X %" means here: the miss/hit TTFT ratio fell by X %, i.e.
//   current ratio / baseline ratio < 1 - X/100        (ratios are geometric means over pairs).
// On the ratio, not on (ratio - 1): the ratio of ratios is exactly what the interval estimates, a
// difference of mean log ratios, so the stated confidence holds; a bar on (ratio - 1) would move with
// the baseline's own estimate, whose error the interval would then not cover. It reads as users
// say it ("from 4x to 2x" is -50 %). For a reader who thinks in (ratio - 1) the reason gives both.
// Where the cached path alone got slower (misses unchanged), a fall of X % in the ratio is a rise of
// the hit TTFT by a factor 1 / (1 - X/100): the hit-TTFT bar is that factor, so both say the same.
//
// Interval: Welch's t on mean(ln r, current) - mean(ln r, baseline), Welch-Satterthwaite degrees of
// freedom, mapped back with exp. Pairs stay pairs within each run (ABBA pairing cancels drift there);
// the two runs are independent samples with their own spreads. The decision uses the same two-sided
// interval at the configured confidence as the absolute verdict: `fail` when its upper bound is below
// the bar, `pass` when its lower bound is at or above it. Each is a one-sided test at level
// (1 - confidence) / 2, so at 95 % confidence a run whose saving shrank by X % or less alarms with at
// most 2.5 % probability (that much when it shrank by exactly X %; with no change at all far less,
// as alarm_probability gives for the runs' spreads), and one that shrank by X % or more passes with
// at most 2.5 %.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvgate/model/format.hpp"
#include "kvgate/model/records.hpp"
#include "kvgate/stats/stats.hpp"

namespace kvgate {

// ---- Comparability ----------------------------------------------------------------------------------

// What must match for two runs' ratios to be comparable. Engine version, block size, URL and
// hardware are deliberately absent: a change there is what a baseline gate exists to catch.
struct RunIdentity {
    std::string model;
    std::string engine;    // e.g. "vllm", "llama.cpp"
    std::string endpoint;  // e.g. "/v1/chat/completions", "in-process"
    int phase = 0;
    int context_size_a = 0;
    int context_size_b = 0;
    int query_size = 0;
    int max_output_tokens = 0;
    std::string ttft = "client";  // the TTFT compared (KVGATE_TTFT): the client's and the engine's differ
};

// One line per differing field: "model (baseline 'a', current 'b')".
inline std::vector<std::string> identity_differences(const RunIdentity& baseline, const RunIdentity& current) {
    std::vector<std::string> out;
    auto text = [&](const char* name, const std::string& b, const std::string& c) {
        if (b != c) out.push_back(std::string(name) + " (baseline '" + b + "', current '" + c + "')");
    };
    auto number = [&](const char* name, int b, int c) {
        if (b != c)
            out.push_back(std::string(name) + " (baseline " + std::to_string(b) + ", current " + std::to_string(c) + ")");
    };
    text("model", baseline.model, current.model);
    text("engine", baseline.engine, current.engine);
    text("endpoint", baseline.endpoint, current.endpoint);
    number("phase", baseline.phase, current.phase);
    number("context_size_a", baseline.context_size_a, current.context_size_a);
    number("context_size_b", baseline.context_size_b, current.context_size_b);
    number("query_size", baseline.query_size, current.query_size);
    number("max_output_tokens", baseline.max_output_tokens, current.max_output_tokens);
    text("ttft", baseline.ttft, current.ttft);
    return out;
}

// Returns the differences (empty when comparable). Throws std::invalid_argument naming them unless
// the user said the runs are comparable; then the caller records them in the report.
inline std::vector<std::string> check_comparable(const RunIdentity& baseline, const RunIdentity& current,
                                                 bool allow_incomparable) {
    auto diffs = identity_differences(baseline, current);
    if (!diffs.empty() && !allow_incomparable) {
        std::string list;
        for (const auto& d : diffs) list += (list.empty() ? "" : "; ") + d;
        throw std::invalid_argument("the baseline is not comparable with this run: " + list +
                                    ". Record the baseline with the same settings, or declare the runs comparable "
                                    "(allow_incomparable) if this difference is what you mean to measure");
    }
    return diffs;
}

// ---- Samples and the interval ----------------------------------------------------------------------

// One run as the comparison sees it.
struct RunSample {
    std::vector<double> log_ratios;   // ln(miss / hit) per pair
    std::vector<double> hit_ttft_ms;  // the hit of each pair
    int dropped_pairs = 0;            // pairs with a non-positive or non-finite TTFT, left out
};

// From paired TTFTs (the k-th hit with the k-th miss); invalid pairs are counted, not hidden.
inline RunSample run_sample(const std::vector<double>& hit_ttft_ms, const std::vector<double>& miss_ttft_ms) {
    if (hit_ttft_ms.size() != miss_ttft_ms.size())
        throw std::invalid_argument("run_sample: " + std::to_string(hit_ttft_ms.size()) + " hits but " +
                                    std::to_string(miss_ttft_ms.size()) + " misses; pass paired trials only");
    RunSample s;
    for (std::size_t i = 0; i < hit_ttft_ms.size(); ++i) {
        const double h = hit_ttft_ms[i], m = miss_ttft_ms[i];
        if (!(std::isfinite(h) && std::isfinite(m) && h > 0 && m > 0)) {
            ++s.dropped_pairs;
            continue;
        }
        s.log_ratios.push_back(std::log(m / h));
        s.hit_ttft_ms.push_back(h);
    }
    return s;
}

// exp of an interval on mean(current) - mean(baseline) of log values.
struct WelchInterval {
    int n_baseline = 0, n_current = 0;
    double baseline_mean = 0, current_mean = 0;  // means of the logs
    double baseline_stdev = 0, current_stdev = 0;
    double log_diff = 0;  // current_mean - baseline_mean
    double se = 0;        // its standard error
    double df = 0;        // Welch-Satterthwaite
    double t = 0;         // the quantile used
    double estimate = 0, low = 0, high = 0;
};

inline WelchInterval welch_log_interval(const std::vector<double>& baseline_logs,
                                        const std::vector<double>& current_logs, double confidence) {
    if (!(confidence > 0 && confidence < 1))
        throw std::invalid_argument("confidence " + std::to_string(confidence) + " must lie in (0, 1), e.g. 0.95");
    if (baseline_logs.size() < 2 || current_logs.size() < 2)
        throw std::invalid_argument("welch_log_interval: needs at least two values per run (baseline " +
                                    std::to_string(baseline_logs.size()) + ", current " +
                                    std::to_string(current_logs.size()) + ")");
    for (const auto* xs : {&baseline_logs, &current_logs})
        for (double x : *xs)
            if (!std::isfinite(x)) throw std::invalid_argument("welch_log_interval: a log value is not finite");
    WelchInterval w;
    w.n_baseline = static_cast<int>(baseline_logs.size());
    w.n_current = static_cast<int>(current_logs.size());
    w.baseline_mean = mean(baseline_logs);
    w.current_mean = mean(current_logs);
    w.baseline_stdev = stdev(baseline_logs);
    w.current_stdev = stdev(current_logs);
    w.log_diff = w.current_mean - w.baseline_mean;
    const double vb = w.baseline_stdev * w.baseline_stdev / w.n_baseline;
    const double vc = w.current_stdev * w.current_stdev / w.n_current;
    w.se = std::sqrt(vb + vc);
    // Both spreads zero leaves df 0/0; the pooled count keeps the quantile defined (width stays 0).
    w.df = w.se > 0 ? (vb + vc) * (vb + vc) / (vb * vb / (w.n_baseline - 1) + vc * vc / (w.n_current - 1))
                    : w.n_baseline + w.n_current - 2;
    w.t = student_t_quantile(0.5 + confidence / 2, w.df);
    w.estimate = std::exp(w.log_diff);
    w.low = std::exp(w.log_diff - w.t * w.se);
    w.high = std::exp(w.log_diff + w.t * w.se);
    return w;
}

// The probability that `fail` is declared (upper bound below `bar`) when the true ratio of ratios is
// `true_ratio`, for an interval with this standard error and df. Treats the standard error as known,
// so it is an approximation for few pairs; at true_ratio == bar it is (1 - confidence) / 2 exactly.
inline double alarm_probability(double true_ratio, double bar, double se, double df, double confidence) {
    if (!(se > 0)) return std::log(true_ratio) < std::log(bar) ? 1.0 : 0.0;
    const double t = student_t_quantile(0.5 + confidence / 2, df);
    return student_t_cdf((std::log(bar) - std::log(true_ratio)) / se - t, df);
}

// ---- The decision -----------------------------------------------------------------------------------

// Outcomes are the verdict's (records.hpp): pass, fail, indeterminate or error; never unverified.

struct BaselineSettings {
    double regression_pct = 10;  // KVGATE_REGRESSION_PCT
    double confidence = 0.95;    // the verdict's confidence
    // The hit-TTFT comparison is always computed and reported; it decides the outcome only when set,
    // because absolute TTFT also moves with the runner (CPU model, load), which the ratio cancels.
    bool gate_hit_ttft = false;
};

// One quantity against its bar.
struct BaselineCheck {
    Outcome outcome = Outcome::error;
    WelchInterval interval;
    double bar = 0;
    bool worse_below = true;  // ratio: below the bar is a regression; hit TTFT: above it is
    int pairs_needed = 0;     // for indeterminate: pairs per run that would decide (0 if none would)
    std::string reason, fix;
};

struct BaselineComparison {
    Outcome outcome = Outcome::error;
    std::string reason, fix;
    std::string method;
    double regression_pct = 0, confidence = 0;
    double baseline_ratio = 0, current_ratio = 0;  // geometric means of miss/hit
    BaselineCheck saving;                          // current ratio / baseline ratio
    BaselineCheck hit_ttft;                        // current hit TTFT / baseline hit TTFT
};

namespace baseline_detail {

// Pairs per run for the half-width t * se to fit in the gap between the estimate and the bar, at the
// observed spreads. The quantile is re-taken at the df the new count would give (a few rounds
// converge); taking the present df would overstate the need several times over for a small run.
inline void name_the_fix(BaselineCheck& c, double confidence, const char* note) {
    const WelchInterval& w = c.interval;
    const double gap = std::fabs(w.log_diff - std::log(c.bar));
    if (gap < 1e-9) {
        c.fix = "the estimate sits on the bar; more pairs narrow the interval but cannot decide a change of exactly "
                "the regression threshold";
        return;
    }
    const double vb = w.baseline_stdev * w.baseline_stdev, vc = w.current_stdev * w.current_stdev;
    auto welch_df = [](double a, double na, double b, double nb) {
        return (a / na + b / nb) * (a / na + b / nb) / ((a / na) * (a / na) / (na - 1) + (b / nb) * (b / nb) / (nb - 1));
    };
    // Only the current run grows, unless the baseline's own share of se^2 already exceeds the room.
    bool both = false;
    double n = w.n_current, t = w.t;
    for (int round = 0; round < 20; ++round) {
        const double room = (gap / t) * (gap / t);  // the largest se^2 that decides
        both = room <= vb / w.n_baseline;
        const double next = std::ceil(both ? (vb + vc) / room : vc / (room - vb / w.n_baseline));
        if (next == n && round > 0) break;
        n = std::max(next, 2.0);
        t = student_t_quantile(0.5 + confidence / 2, both ? welch_df(vb, n, vc, n) : welch_df(vb, w.n_baseline, vc, n));
    }
    if (both) {
        c.pairs_needed = std::max(w.n_baseline + 1, static_cast<int>(n));
        c.fix = detail::fmt("the baseline's %.0f pairs alone leave the interval wider than the gap to the bar: record the "
                    "baseline and this run with about %.0f pairs each (--trials %.0f)",
                    w.n_baseline, c.pairs_needed, c.pairs_needed);
    } else {
        c.pairs_needed = std::max(w.n_current + 1, static_cast<int>(n));
        c.fix = detail::fmt("more pairs in this run: about %.0f (--trials %.0f) would separate the interval from the bar at "
                    "these spreads",
                    c.pairs_needed, c.pairs_needed);
    }
    if (*note) c.fix += std::string("; ") + note;
}

inline void decide(BaselineCheck& c, const char* what, double confidence, const char* note) {
    const WelchInterval& w = c.interval;
    const std::string numbers = std::string(what) +
                                detail::fmt(" x%.3f, %.0f%% interval [%.3f, %.3f] (Welch t, df %.1f, ", w.estimate,
                                    confidence * 100, w.low, w.high, w.df) +
                                detail::fmt("%.0f baseline + %.0f current pairs); bar %.3f", w.n_baseline, w.n_current, c.bar);
    if (!(w.se > 0)) {
        c.outcome = Outcome::error;
        c.reason = "no spread in either run: " + numbers;
        c.fix = "identical values in every pair do not come from a clock; check that the results were not edited "
                "or truncated";
        return;
    }
    const bool regressed = c.worse_below ? w.high < c.bar : w.low > c.bar;
    const bool ruled_out = c.worse_below ? w.low >= c.bar : w.high <= c.bar;
    if (regressed) {
        c.outcome = Outcome::fail;
        c.reason = "the interval lies beyond the regression bar: " + numbers;
    } else if (ruled_out) {
        c.outcome = Outcome::pass;
        c.reason = "the interval rules out a regression beyond the bar: " + numbers;
    } else {
        c.outcome = Outcome::indeterminate;
        c.reason = "the interval straddles the regression bar: " + numbers;
        name_the_fix(c, confidence, note);
    }
}

}  // namespace baseline_detail

// Needs at least two valid pairs in each run; fewer gives `error` with the fix.
inline BaselineComparison compare_to_baseline(const RunSample& baseline, const RunSample& current,
                                              const BaselineSettings& settings = {}) {
    if (!(settings.regression_pct > 0 && settings.regression_pct < 100))
        throw std::invalid_argument("regression_pct " + std::to_string(settings.regression_pct) +
                                    " must lie in (0, 100): the percentage the saving may shrink before the gate fails");
    if (!(settings.confidence > 0 && settings.confidence < 1))
        throw std::invalid_argument("confidence " + std::to_string(settings.confidence) +
                                    " must lie in (0, 1), e.g. 0.95");
    for (const RunSample* s : {&baseline, &current})
        if (s->log_ratios.size() != s->hit_ttft_ms.size())
            throw std::invalid_argument("compare_to_baseline: a run has " + std::to_string(s->log_ratios.size()) +
                                        " log ratios but " + std::to_string(s->hit_ttft_ms.size()) +
                                        " hit TTFTs; build it with run_sample");
    using namespace baseline_detail;
    BaselineComparison r;
    r.regression_pct = settings.regression_pct;
    r.confidence = settings.confidence;
    r.method = detail::fmt("Welch's t interval (Welch-Satterthwaite df) on the difference of the runs' mean ln(miss/hit) "
                   "over pairs, mapped back with exp: current/baseline ratio of geometric-mean miss/hit ratios; fail "
                   "below 1 - %.0f%%. The same on ln(hit TTFT), bar 1/(1 - %.0f%%)",
                   settings.regression_pct, settings.regression_pct);
    const std::size_t nb = baseline.log_ratios.size(), nc = current.log_ratios.size();
    if (nb < 2 || nc < 2) {
        r.reason = detail::fmt("too few valid pairs to compare: baseline %.0f, current %.0f (at least 2 each)", nb, nc);
        r.fix = "record both runs with at least 2 trials per arm (--trials); pairs with a failed TTFT do not count";
        return r;
    }
    std::vector<double> log_hit_b, log_hit_c;
    for (double h : baseline.hit_ttft_ms) log_hit_b.push_back(std::log(h));
    for (double h : current.hit_ttft_ms) log_hit_c.push_back(std::log(h));
    for (const auto* xs : {&log_hit_b, &log_hit_c})
        for (double x : *xs)
            if (!std::isfinite(x))
                throw std::invalid_argument("compare_to_baseline: a hit TTFT is not positive; build runs with run_sample");

    r.saving.interval = welch_log_interval(baseline.log_ratios, current.log_ratios, settings.confidence);
    r.saving.bar = 1 - settings.regression_pct / 100;
    r.saving.worse_below = true;
    r.baseline_ratio = std::exp(r.saving.interval.baseline_mean);
    r.current_ratio = std::exp(r.saving.interval.current_mean);
    // Both runs need the same sizes, so no size change is offered as a fix here.
    decide(r.saving, "current/baseline miss/hit ratio", settings.confidence, "");

    r.hit_ttft.interval = welch_log_interval(log_hit_b, log_hit_c, settings.confidence);
    r.hit_ttft.bar = 1 / (1 - settings.regression_pct / 100);
    r.hit_ttft.worse_below = false;
    decide(r.hit_ttft, "current/baseline hit TTFT", settings.confidence,
           "absolute TTFT also varies with the runner: compare runs from the same kind of machine");

    std::string ratios = detail::fmt("miss/hit ratio %.3f now vs %.3f in the baseline (%+.1f%%", r.current_ratio,
                             r.baseline_ratio, (r.current_ratio / r.baseline_ratio - 1) * 100);
    // The same change on (ratio - 1), for readers who think of the saving that way; meaningless
    // when the baseline saved next to nothing.
    if (r.baseline_ratio > 1.01)
        ratios += detail::fmt("; the part beyond break-even, ratio - 1, %.3f vs %.3f, %+.1f%%", r.current_ratio - 1,
                      r.baseline_ratio - 1, ((r.current_ratio - 1) / (r.baseline_ratio - 1) - 1) * 100);
    ratios += ")";
    const BaselineCheck& s = r.saving;
    const BaselineCheck& h = r.hit_ttft;
    r.outcome = s.outcome;
    r.reason = ratios + "; " + s.reason;
    r.fix = s.fix;
    if (settings.gate_hit_ttft && h.outcome != Outcome::pass) {
        auto rank = [](Outcome o) {
            return o == Outcome::error ? 3 : o == Outcome::fail ? 2 : o == Outcome::indeterminate ? 1 : 0;
        };
        if (rank(h.outcome) > rank(s.outcome)) {
            r.outcome = h.outcome;
            r.fix = h.fix;
        }
        r.reason += "; hit TTFT: " + h.reason;
    }
    return r;
}

}  // namespace kvgate
