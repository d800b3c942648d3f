// The baseline gate's false-alarm rate, by resampling healthy pairs against healthy pairs.
//
// Takes per-pair TTFTs from kvgate results files (every file one healthy run of the same
// configuration; pairs pooled) or draws synthetic ones, then 1000 times makes a "baseline" and a
// "current" run out of them and asks compare_to_baseline for a verdict. Both come from the same
// pairs, so every `fail` is a false alarm. Two ways to make the runs:
//   split:     a random half of the pairs against the other half (independent, but half the size);
//   bootstrap: n pairs drawn with replacement for each (full size, but from one empirical sample).
// Prints the alarm rate beside the design's bound ((1 - confidence) / 2) and the rate the spread
// predicts, and writes a gnuplot figure of the resampled intervals against the regression bar.
//
//   kvgate_baseline_resample [--results FILE]... [--synthetic-pairs N] [--synthetic-sd S] [--seed X]
//       [--resamples 1000] [--regression-pct 10] [--confidence 0.95] [--out DIR]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvgate/experiment/baseline.hpp"

namespace {

using kvgate::Outcome;
using kvgate::RunSample;

struct Pairs {
    std::vector<double> hit, miss;
};

[[noreturn]] void usage_error(const std::string& what) {
    std::cerr << "baseline_resample: " << what
              << "\nusage: kvgate_baseline_resample [--results FILE]... [--synthetic-pairs N] [--synthetic-sd S] "
                 "[--seed X] [--resamples N] [--regression-pct P] [--confidence C] [--out DIR]\n";
    std::exit(2);
}

double ttft_of(const nlohmann::json& trial) {
    const auto it = trial.find("ttft_ms");
    return it != trial.end() && it->is_number() ? it->get<double>() : std::nan("");
}

// The k-th measured hit with the k-th measured miss, as the verdict pairs them.
void read_results(const std::string& path, Pairs& pairs) {
    std::ifstream in(path);
    if (!in) usage_error("cannot open " + path);
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
        usage_error(path + " is not JSON: " + e.what());
    }
    auto measured = [&](const char* arm) {
        std::vector<double> out;
        if (!doc.contains(arm) || !doc[arm].contains("trials") || !doc[arm]["trials"].is_array())
            usage_error(path + ": no " + arm + ".trials[]; is it a kvgate results file?");
        for (const auto& t : doc[arm]["trials"])
            if (!t.value("warmup", false)) out.push_back(ttft_of(t));
        return out;
    };
    const auto hit = measured("cache_hit"), miss = measured("cache_miss");
    const std::size_t n = std::min(hit.size(), miss.size());
    pairs.hit.insert(pairs.hit.end(), hit.begin(), hit.begin() + static_cast<long>(n));
    pairs.miss.insert(pairs.miss.end(), miss.begin(), miss.begin() + static_cast<long>(n));
}

// Hit and miss TTFTs lognormal around the CPU vLLM's figures (140 and 550 ms), each with `sd` in ln.
void synthesize(int n, double sd, std::mt19937_64& rng, Pairs& pairs) {
    std::normal_distribution<double> noise(0, sd);
    for (int i = 0; i < n; ++i) {
        pairs.hit.push_back(140 * std::exp(noise(rng)));
        pairs.miss.push_back(550 * std::exp(noise(rng)));
    }
}

RunSample pick(const RunSample& all, const std::vector<std::size_t>& idx) {
    RunSample s;
    for (std::size_t i : idx) {
        s.log_ratios.push_back(all.log_ratios[i]);
        s.hit_ttft_ms.push_back(all.hit_ttft_ms[i]);
    }
    return s;
}

struct Draw {
    double estimate, low, high;
    Outcome outcome;
};

// Wilson score interval for k of n at 95 %.
std::pair<double, double> wilson(int k, int n) {
    const double z = 1.959963984540054, p = double(k) / n, d = 1 + z * z / n;
    const double c = (p + z * z / (2 * n)) / d, h = z * std::sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / d;
    return {std::max(0.0, c - h), std::min(1.0, c + h)};
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> results;
    int synthetic_pairs = 0, resamples = 1000;
    double synthetic_sd = 0.05, regression_pct = 10, confidence = 0.95;
    unsigned long long seed = 20261129;
    std::filesystem::path out = "baseline_resample";
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage_error(a + " needs a value");
            return argv[++i];
        };
        try {
            if (a == "--results") results.push_back(value());
            else if (a == "--synthetic-pairs") synthetic_pairs = std::stoi(value());
            else if (a == "--synthetic-sd") synthetic_sd = std::stod(value());
            else if (a == "--seed") seed = std::stoull(value());
            else if (a == "--resamples") resamples = std::stoi(value());
            else if (a == "--regression-pct") regression_pct = std::stod(value());
            else if (a == "--confidence") confidence = std::stod(value());
            else if (a == "--out") out = value();
            else usage_error("unknown argument " + a);
        } catch (const std::logic_error&) {
            usage_error("bad value for " + a);
        }
    }
    if (results.empty() && synthetic_pairs == 0) synthetic_pairs = 20;
    if (resamples < 1) usage_error("--resamples must be at least 1");

    std::mt19937_64 rng(seed);
    Pairs pairs;
    for (const auto& r : results) read_results(r, pairs);
    if (synthetic_pairs > 0) synthesize(synthetic_pairs, synthetic_sd, rng, pairs);
    const RunSample all = kvgate::run_sample(pairs.hit, pairs.miss);
    const std::size_t n = all.log_ratios.size();
    if (n < 4) usage_error("need at least 4 valid pairs to split, have " + std::to_string(n));

    kvgate::BaselineSettings settings;
    settings.regression_pct = regression_pct;
    settings.confidence = confidence;
    const double bar = 1 - regression_pct / 100;
    const double sd = kvgate::stdev(all.log_ratios);
    std::printf("pairs: %zu (%d dropped) from %s; ln(miss/hit) mean %.4f (ratio %.3f), sd %.4f\n", n,
                all.dropped_pairs,
                results.empty() ? "synthetic draws" : (std::to_string(results.size()) + " results file(s)").c_str(),
                kvgate::mean(all.log_ratios), std::exp(kvgate::mean(all.log_ratios)), sd);
    std::printf("gate: fail when the %.0f%% interval on current/baseline ratio lies below %.3f; design bound on "
                "false alarms (1 - confidence)/2 = %.2f%% (reached only when the saving shrank by exactly %.0f%%)\n",
                confidence * 100, bar, (1 - confidence) / 2 * 100, regression_pct);

    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    if (ec) usage_error("cannot create " + out.string() + ": " + ec.message());
    nlohmann::json summary = {{"pairs", n},
                              {"dropped_pairs", all.dropped_pairs},
                              {"results", results},
                              {"synthetic_pairs", synthetic_pairs},
                              {"synthetic_sd", synthetic_sd},
                              {"seed", seed},
                              {"resamples", resamples},
                              {"regression_pct", regression_pct},
                              {"confidence", confidence},
                              {"log_ratio_mean", kvgate::mean(all.log_ratios)},
                              {"log_ratio_sd", sd},
                              {"design_bound", (1 - confidence) / 2}};

    std::vector<std::size_t> idx(n);
    for (std::size_t i = 0; i < n; ++i) idx[i] = i;
    for (const std::string mode : {"split", "bootstrap"}) {
        const std::size_t nb = mode == "split" ? n / 2 : n, nc = mode == "split" ? n - n / 2 : n;
        std::vector<Draw> draws;
        int fails = 0, passes = 0, at_bar_fails = 0;
        std::uniform_int_distribution<std::size_t> any(0, n - 1);
        for (int r = 0; r < resamples; ++r) {
            std::vector<std::size_t> b, c;
            if (mode == "split") {
                std::shuffle(idx.begin(), idx.end(), rng);
                b.assign(idx.begin(), idx.begin() + static_cast<long>(nb));
                c.assign(idx.begin() + static_cast<long>(nb), idx.end());
            } else {
                for (std::size_t k = 0; k < n; ++k) b.push_back(any(rng));
                for (std::size_t k = 0; k < n; ++k) c.push_back(any(rng));
            }
            const RunSample base = pick(all, b);
            RunSample current = pick(all, c);
            const auto cmp = kvgate::compare_to_baseline(base, current, settings);
            const auto& w = cmp.saving.interval;
            draws.push_back({w.estimate, w.low, w.high, cmp.outcome});
            fails += cmp.outcome == Outcome::fail;
            passes += cmp.outcome == Outcome::pass;
            // The worst healthy case: the same pairs with the current saving shrunk by exactly the bar.
            for (double& x : current.log_ratios) x += std::log(bar);
            at_bar_fails += kvgate::compare_to_baseline(base, current, settings).outcome == Outcome::fail;
        }
        // What the design predicts for no change at this spread and these sizes.
        const double se = sd * std::sqrt(1.0 / nb + 1.0 / nc);
        const double predicted = kvgate::alarm_probability(1.0, bar, se, double(nb + nc - 2), confidence);
        const auto ci = wilson(fails, resamples);
        std::printf("%-9s %zu vs %zu pairs: false alarms %d/%d = %.2f%% (95%% Wilson [%.2f%%, %.2f%%]); predicted "
                    "%.3f%%; pass %.1f%%, indeterminate %.1f%%\n",
                    mode.c_str(), nb, nc, fails, resamples, 100.0 * fails / resamples, 100 * ci.first,
                    100 * ci.second, 100 * predicted, 100.0 * passes / resamples,
                    100.0 * (resamples - fails - passes) / resamples);
        const auto ci_bar = wilson(at_bar_fails, resamples);
        std::printf("%-9s the same with the current ratios x %.3f (shrunk by exactly the bar): fail %d/%d = %.2f%% "
                    "(95%% Wilson [%.2f%%, %.2f%%]); design %.2f%%\n",
                    "", bar, at_bar_fails, resamples, 100.0 * at_bar_fails / resamples, 100 * ci_bar.first,
                    100 * ci_bar.second, (1 - confidence) / 2 * 100);
        summary[mode] = {{"baseline_pairs", nb},     {"current_pairs", nc},
                         {"false_alarms", fails},    {"rate", double(fails) / resamples},
                         {"rate_wilson_low", ci.first}, {"rate_wilson_high", ci.second},
                         {"predicted_rate", predicted}, {"pass_rate", double(passes) / resamples},
                         {"at_bar_fail_rate", double(at_bar_fails) / resamples}};

        std::sort(draws.begin(), draws.end(), [](const Draw& x, const Draw& y) { return x.estimate < y.estimate; });
        std::ofstream dat(out / (mode + ".dat"));
        dat << "# rank estimate low high outcome(0 pass,1 fail,2 indeterminate)\n";
        for (std::size_t k = 0; k < draws.size(); ++k)
            dat << k << ' ' << draws[k].estimate << ' ' << draws[k].low << ' ' << draws[k].high << ' '
                << (draws[k].outcome == Outcome::pass ? 0 : draws[k].outcome == Outcome::fail ? 1 : 2)
                << '\n';
    }
    std::ofstream(out / "summary.json") << summary.dump(2) << '\n';

    const std::string png = (out / "baseline_resample.png").string();
    std::ofstream gp(out / "baseline_resample.gp");
    gp << "set terminal pngcairo size 1100,800 font ',10'\nset output '" << png << "'\n"
       << "set multiplot layout 2,1 title 'Healthy vs healthy: " << resamples << " resampled comparisons of " << n
       << " pairs; " << confidence * 100 << "% intervals on current/baseline miss-hit ratio'\n"
       << "set ylabel 'current / baseline ratio'\nset xlabel 'resample (sorted by estimate)'\nset grid ytics\n"
       << "set key top left\n";
    for (const std::string mode : {"split", "bootstrap"}) {
        const std::string dat = "'" + (out / (mode + ".dat")).string() + "'";
        gp << "set title '" << mode << "'\n"
           << "plot " << dat << " using 1:3:4 with filledcurves fc rgb '#c6cbe8' title 'interval', " << dat
           << " using 1:2 with lines lw 2 lc rgb '#3b4cc0' title 'estimate', " << dat
           << " using 1:($5 == 1 ? $4 : 1/0) with points pt 7 ps 0.6 lc rgb '#d62728' title 'false alarm (upper bound)', "
           << bar << " with lines lw 2 lc rgb '#d62728' title 'regression bar " << bar << "', "
           << "1 with lines dt 2 lc rgb 'black' title 'no change'\n";
    }
    gp << "unset multiplot\n";
    gp.close();
    const std::string cmd = "gnuplot '" + (out / "baseline_resample.gp").string() + "'";
    if (std::system(cmd.c_str()) != 0) {
        std::cerr << "baseline_resample: gnuplot failed; the data are in " << out << "\n";
        return 1;
    }
    std::printf("figure: %s\n", png.c_str());
    return 0;
}
