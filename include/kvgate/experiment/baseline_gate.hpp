// The baseline gate on results: a run against a stored run from a known-good build (KVGATE_BASELINE),
// with baseline.hpp's statistics. Loads and checks the baseline before anything is timed (an
// incomparable one is misuse), compares after the run, records the comparison in the result and
// folds it into the verdict: the saving shrinking beyond KVGATE_REGRESSION_PCT fails a run that the
// absolute gate passes.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvgate/experiment/baseline.hpp"
#include "kvgate/model/experiment.hpp"
#include "kvgate/model/records.hpp"
#include "kvgate/model/results_json.hpp"
#include "kvgate/model/settings.hpp"

namespace kvgate {

// A directory holds one results file per phase; a file is taken as it is.
inline std::filesystem::path baseline_file(const std::string& setting, const PhaseDescriptor& phase) {
    const std::filesystem::path p(setting);
    if (std::filesystem::is_directory(p)) return results_path(p, phase);
    return p;
}

inline RunIdentity run_identity(const PhaseResult& r) {
    RunIdentity id;
    id.model = r.settings.target.model;
    id.engine = r.engine.name;
    id.endpoint = r.engine.endpoint;
    const auto& phases = default_experiment().phases;
    for (std::size_t i = 0; i < phases.size(); ++i)
        if (phases[i] == r.phase) id.phase = static_cast<int>(i) + 1;
    id.context_size_a = r.settings.hit_miss.context_a_tokens;
    id.context_size_b = r.settings.hit_miss.context_b_tokens;
    id.query_size = r.settings.hit_miss.query_tokens;
    id.max_output_tokens = r.settings.hit_miss.max_output_tokens;
    id.ttft = to_string(r.settings.gate.ttft);
    return id;
}

// The k-th measured hit with the k-th measured miss, as the verdict pairs them.
inline RunSample run_sample_of(const PhaseResult& r) {
    const auto hits = r.measured(Arm::hit);
    const auto misses = r.measured(Arm::miss);
    std::vector<double> h, m;
    for (std::size_t i = 0; i < std::min(hits.size(), misses.size()); ++i) {
        h.push_back(hits[i]->ttft_ms);
        m.push_back(misses[i]->ttft_ms);
    }
    return run_sample(h, m);
}

struct LoadedBaseline {
    std::filesystem::path path;
    PhaseResult result;
};

// What a run that did not finish got to: "complete": false, its pairs of those planned, its fault.
inline std::string partial_run(const PhaseResult& r) {
    const std::size_t pairs = std::min(r.measured(Arm::hit).size(), r.measured(Arm::miss).size());
    return "\"complete\": false, " + std::to_string(pairs) + " of " + std::to_string(r.settings.hit_miss.trials) +
           " pairs measured, " +
           (r.fault ? "stopped by a fault (" + std::string(to_string(r.fault->kind)) + ")"
                    : std::string("killed or still running"));
}

// A partial baseline has fewer pairs than it should and no verdict of its own: comparing against
// what it got to is refused (misuse). `source` names where the path came from.
inline void require_finished_baseline(const LoadedBaseline& b, const std::string& source) {
    if (!b.result.complete)
        throw std::invalid_argument(source + " '" + b.path.string() + "' is a partial run (" + partial_run(b.result) +
                                    "): a baseline must be a run that finished; give the results file of a finished "
                                    "run of a known-good build, or record one again and let it finish");
}

// Reads the baseline for `phase`; a missing, unreadable or partial file is misuse (the setting names it).
inline LoadedBaseline load_baseline(const std::string& setting, const PhaseDescriptor& phase) {
    LoadedBaseline b;
    b.path = baseline_file(setting, phase);
    if (!std::filesystem::is_regular_file(b.path))
        throw std::invalid_argument("KVGATE_BASELINE: no results file at '" + b.path.string() +
                                    "'; give the results_<phase>.json of a known-good run (or its directory), or "
                                    "leave KVGATE_BASELINE empty for no baseline gate");
    b.result = read_results_file(b.path);
    if (b.result.phase != phase)
        throw std::invalid_argument("KVGATE_BASELINE: '" + b.path.string() + "' holds phase '" + b.result.phase.name +
                                    "', this run is '" + phase.name + "'");
    require_finished_baseline(b, "KVGATE_BASELINE");
    return b;
}

// Throws (before any trial) when the runs are not comparable and the user did not say they are.
inline std::vector<std::string> check_baseline(const LoadedBaseline& b, const PhaseResult& current, bool comparable) {
    try {
        return check_comparable(run_identity(b.result), run_identity(current), comparable);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument("KVGATE_BASELINE '" + b.path.string() + "': " + e.what() +
                                    " (KVGATE_BASELINE_COMPARABLE=ON / --baseline-comparable)");
    }
}

inline BaselineRecord compare_runs(const LoadedBaseline& b, const PhaseResult& current, double regression_pct,
                                   std::vector<std::string> differences) {
    BaselineSettings bs;
    bs.regression_pct = regression_pct;
    bs.confidence = current.verdict.confidence > 0 ? current.verdict.confidence : current.settings.gate.confidence;
    const RunSample base = run_sample_of(b.result);
    const BaselineComparison c = compare_to_baseline(base, run_sample_of(current), bs);
    BaselineRecord rec;
    rec.path = b.path.string();
    rec.revision = b.result.git_revision;
    rec.timestamp = b.result.timestamp;
    rec.outcome = c.outcome;
    rec.reason = c.reason;
    rec.fix = c.fix;
    rec.method = c.method;
    rec.regression_pct = c.regression_pct;
    rec.confidence = c.confidence;
    rec.baseline_ratio = c.baseline_ratio;
    rec.current_ratio = c.current_ratio;
    rec.ratio_estimate = c.saving.interval.estimate;
    rec.ratio_low = c.saving.interval.low;
    rec.ratio_high = c.saving.interval.high;
    rec.ratio_bar = c.saving.bar;
    rec.hit_estimate = c.hit_ttft.interval.estimate;
    rec.hit_low = c.hit_ttft.interval.low;
    rec.hit_high = c.hit_ttft.interval.high;
    rec.hit_bar = c.hit_ttft.bar;
    rec.differences = std::move(differences);
    for (double l : base.log_ratios) rec.baseline_pair_ratios.push_back(std::exp(l));
    return rec;
}

// A pass becomes the baseline gate's outcome; an indeterminate absolute verdict becomes a fail when the
// baseline gate shows the saving shrank (that evidence is conclusive on its own); any other outcome stands.
inline void fold_baseline(Verdict& v, const BaselineRecord& rec) {
    const std::string said = "baseline " + rec.path + " (revision " + rec.revision + "): " + to_string(rec.outcome) + ", " +
                             rec.reason;
    if (v.outcome == Outcome::indeterminate && rec.outcome == Outcome::fail) {
        v.outcome = Outcome::fail;
        v.reason = "the saving shrank against the baseline: " + said + " (the absolute gate could not decide: " +
                   v.reason + ")";
        return;
    }
    if (v.outcome != Outcome::pass) {
        v.reason += "; " + said;
        return;
    }
    if (rec.outcome == Outcome::pass) {
        v.reason += "; " + said;
        return;
    }
    // The alarm is a shrink shown. At the seed's 10 pairs a run rarely rules out a 10 % shrink
    // (healthy against healthy: the interval's half-width is about 12 %), so a pass that merely
    // could not be compared stays a pass, with the comparison and the pairs it needs said.
    if (rec.outcome == Outcome::indeterminate) {
        v.reason += "; " + said;
        v.fix = "to let the baseline comparison decide: " + rec.fix;
        return;
    }
    const std::string absolute = v.reason;
    v.outcome = rec.outcome == Outcome::fail ? Outcome::fail : Outcome::error;
    v.reason = std::string(rec.outcome == Outcome::fail ? "the saving shrank against the baseline: "
                                                 : "the baseline comparison failed to run: ") +
               said + " (the absolute gate passed: " + absolute + ")";
    v.fix = rec.fix;
}

// What `kvgate compare` decides: the current run's own verdict with the comparison folded in, as a
// run measured with KVGATE_BASELINE decides, so a run that failed its own gate does not pass here. A
// run that did not finish decides nothing, however its pairs compare.
inline Verdict compare_verdict(const PhaseResult& current, const BaselineRecord& rec) {
    Verdict v = current.verdict;
    if (current.complete) {
        fold_baseline(v, rec);
        return v;
    }
    v.outcome = Outcome::error;
    v.reason = "the current run is partial (" + partial_run(current) +
               "): it has no verdict, whatever its pairs compare like (baseline " + rec.path + ": " + to_string(rec.outcome) +
               ", " + rec.reason + ")";
    v.fix = "compare the results file of a run that finished (\"complete\": true); re-run the phase and let it "
            "finish";
    return v;
}

}  // namespace kvgate
