// The experiment seam, run side: how each kind of experiment (experiment.hpp's ExperimentKind) runs
// a phase on an engine, one entry each, through the shared run-and-record loop (run_record.hpp).
// `kvgate run` loops over this table; its report side is report_experiments.hpp. A new experiment is
// its runner and results codec, its report, one ExperimentKind value with its descriptor
// (experiment.hpp), one entry here and one there.
#pragma once

#include <algorithm>
#include <filesystem>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvgate/engine/engine.hpp"
#include "kvgate/experiment/curve.hpp"
#include "kvgate/experiment/protocol.hpp"
#include "kvgate/experiment/run_record.hpp"
#include "kvgate/model/experiment.hpp"
#include "kvgate/model/results_json.hpp"
#include "kvgate/model/settings.hpp"

namespace kvgate {

struct ExperimentRunner {
    ExperimentKind kind;
    // Runs `phase` on `engine`, recording its results file at `path`; returns the run's headline.
    RunHeadline (*run)(Engine&, const Settings&, const PhaseDescriptor& phase, const std::filesystem::path& path,
                       std::ostream& progress);
};

namespace experiment_detail {

// Experiment 1 (and the fleet): hit, miss and cold arms, their verdict.
inline RunHeadline run_hit_miss(Engine& engine, const Settings& s, const PhaseDescriptor& phase,
                                const std::filesystem::path& path, std::ostream& progress) {
    return phase_headline(record_phase(engine, s, phase, path, progress));
}

// Experiment 2: the sweep over edit positions, its fit and its verdict.
inline RunHeadline run_curve_sweep(Engine& engine, const Settings& s, const PhaseDescriptor&,
                                   const std::filesystem::path& path, std::ostream& progress) {
    return curve_headline(record_curve(engine, s, path, progress));
}

}  // namespace experiment_detail

inline const std::vector<ExperimentRunner>& experiment_runners() {
    static const std::vector<ExperimentRunner> all = {
        {ExperimentKind::hit_miss, experiment_detail::run_hit_miss},
        {ExperimentKind::curve, experiment_detail::run_curve_sweep},
    };
    return all;
}

inline const ExperimentRunner& experiment_runner(ExperimentKind kind) {
    for (const auto& r : experiment_runners())
        if (r.kind == kind) return r;
    throw std::logic_error("experiment_runners(): no entry for this ExperimentKind; add one beside the others");
}

inline const Experiment& experiment_of(const PhaseDescriptor& phase) {
    for (const auto& e : experiments())
        for (const auto& p : e.phases)
            if (p == phase) return e;
    throw std::logic_error("phase '" + phase.name + "' is in no experiment");
}

// The phase `kvgate run <name>` runs: the phase named so, or the experiment's only phase, or the one
// of its phases that runs the engine kind the settings name.
inline const PhaseDescriptor& phase_to_run(const std::string& name, EngineKind engine) {
    if (const auto* phase = find_phase(name)) return *phase;
    const auto named = std::find_if(experiments().begin(), experiments().end(),
                                    [&](const Experiment& e) { return e.id == name; });
    if (named == experiments().end()) {
        std::string phases;
        for (const auto& e : experiments())
            for (const auto& p : e.phases) phases += (phases.empty() ? "" : ", ") + p.name;
        throw std::invalid_argument("'" + name + "' is neither an experiment (" + experiment_list() +
                                    ") nor a phase (" + phases + ")");
    }
    const Experiment& e = *named;
    if (e.phases.size() == 1) return e.phases.front();
    std::string engines;
    for (const auto& p : e.phases) {
        if (p.engine == engine) return p;
        engines += (engines.empty() ? "" : ", ") + std::string(to_string(p.engine)) + " (" + p.name + ")";
    }
    throw std::invalid_argument("experiment '" + name + "' has no phase on the engine " + to_string(engine) +
                                "; set KVGATE_ENGINE (--engine) to one of " + engines);
}

// Runs a phase through its experiment's runner, recording the results file in the settings' out
// directory. The engine must be the phase's kind (make_engine with settings.engine = phase.engine).
inline RunHeadline run_experiment_phase(Engine& engine, const Settings& s, const PhaseDescriptor& phase,
                                        std::ostream& progress) {
    return experiment_runner(experiment_of(phase).kind).run(engine, s, phase, results_path(s.out, phase), progress);
}

}  // namespace kvgate
