// What kvgate can run: experiments made of phases, each phase one engine kind with its own results
// file. `kvgate run`, the protocol, the report step and every reporter loop over these descriptors;
// nothing else names a phase. Adding a phase is one entry here; adding an engine kind is one value
// and one name here plus one factory entry (engines.hpp); adding a kind of experiment, one value of
// ExperimentKind with its runner and its report (docs/engines.md counts the files).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "kvgate/model/enum_names.hpp"

namespace kvgate {

enum class EngineKind {
    vllm_http,    // vLLM's OpenAI-compatible server, streamed over HTTP
    vllm_python,  // vLLM's LLM class in this process (embedded interpreter)
    llamacpp_http,  // llama.cpp's server (llama-server), streamed over HTTP
    vllm_fleet,   // vLLM replicas behind a router: HTTP through the router, placement from each replica's metrics
};

namespace detail {
inline constexpr EnumName<EngineKind> engine_kind_names[] = {
    {EngineKind::vllm_http, "vllm_http"},
    {EngineKind::vllm_python, "vllm_python"},
    {EngineKind::llamacpp_http, "llamacpp"},  // what the llama.cpp fixture's engine.env says
    {EngineKind::vllm_fleet, "vllm_fleet"},
};
}  // namespace detail

inline const char* to_string(EngineKind kind) { return detail::enum_name(detail::engine_kind_names, kind); }

inline std::string engine_kind_list() { return detail::enum_name_list(detail::engine_kind_names); }

inline EngineKind engine_kind_from_string(const std::string& name) {
    if (const auto kind = detail::enum_from_name(detail::engine_kind_names, name)) return *kind;
    throw std::invalid_argument("KVGATE_ENGINE: '" + name + "' is not an engine kind; use one of " + engine_kind_list());
}

// How a phase takes part in the figures that set phases against each other.
enum class PhaseRole {
    served,      // requests travel through a server's API (HTTP)
    in_process,  // the engine runs in kvgate's process: no transport
};

struct PhaseDescriptor {
    std::string name;          // unique across experiments, e.g. "phase1"
    std::string seed_key;      // the seed's `phase` value in the results JSON, e.g. "phase1_http_api"
    std::string label;         // short name in figures, e.g. "P1"
    std::string title;         // e.g. "Phase 1: HTTP streaming API"
    EngineKind engine = EngineKind::vllm_http;
    std::string results_file;  // e.g. "results_phase1.json", in the output directory
    PhaseRole role = PhaseRole::served;
    // The in-process phase (by name) that runs the same engine without the transport: this phase
    // minus that one is the transport's overhead. Empty: no such comparison.
    std::string overhead_against;

    bool operator==(const PhaseDescriptor& o) const { return name == o.name; }
    bool operator!=(const PhaseDescriptor& o) const { return !(*this == o); }
};

// How an experiment runs and what its results are: Experiment 1's hit/miss phases (PhaseResult), or
// Experiment 2's sweep over edit positions (curve.hpp, its own results file and figure). Each kind has
// one runner (experiment_runners.hpp) and one report (report_experiments.hpp).
enum class ExperimentKind { hit_miss, curve };

struct Experiment {
    std::string id;     // prefix of its figures' file names, e.g. "experiment1"
    std::string title;
    std::vector<PhaseDescriptor> phases;
    ExperimentKind kind = ExperimentKind::hit_miss;
};

inline const std::vector<Experiment>& experiments() {
    static const std::vector<Experiment> all = {
        {"experiment1",
         "Prefix-cache invalidation cost",
         {
             {"phase1", "phase1_http_api", "P1", "Phase 1: HTTP streaming API", EngineKind::vllm_http,
              "results_phase1.json", PhaseRole::served, "phase2"},
             {"phase2", "phase2_python_api", "P2", "Phase 2: direct Python API", EngineKind::vllm_python,
              "results_phase2.json", PhaseRole::in_process, ""},
             // Phase 1's protocol on a second engine, so the figures set the engines side by side.
             {"llamacpp_phase1", "phase1_http_api", "L1", "Phase 1 on llama.cpp: HTTP streaming API",
              EngineKind::llamacpp_http, "results_llamacpp_phase1.json", PhaseRole::served, ""},
         }},
        // Phase 1's protocol through a router: the seed's phase key, its own results file and report.
        {"fleet",
         "Prefix-cache reuse through a router in front of replicas",
         {
             {"fleet_phase1", "phase1_http_api", "F1", "Fleet: HTTP streaming API through a router",
              EngineKind::vllm_fleet, "results_fleet_phase1.json", PhaseRole::served, ""},
         }},
        {"experiment2",
         "Invalidation-cost curve",
         {
             {"curve", "experiment2_curve", "C", "Experiment 2: invalidation-cost curve", EngineKind::vllm_http,
              "results_curve.json", PhaseRole::served, ""},
         },
         ExperimentKind::curve},
    };
    return all;
}

inline std::string experiment_list() {
    std::string ids;
    for (const auto& e : experiments()) ids += (ids.empty() ? "" : ", ") + e.id;
    return ids;
}

inline const Experiment& experiment(const std::string& id) {
    for (const auto& e : experiments())
        if (e.id == id) return e;
    throw std::invalid_argument("no experiment '" + id + "'; known: " + experiment_list());
}

inline const Experiment& default_experiment() { return experiments().front(); }

inline const PhaseDescriptor* find_phase(const std::string& name) {
    for (const auto& e : experiments())
        for (const auto& p : e.phases)
            if (p.name == name) return &p;
    return nullptr;
}

inline const PhaseDescriptor& phase_descriptor(const std::string& name) {
    if (const auto* p = find_phase(name)) return *p;
    std::string known;
    for (const auto& e : experiments())
        for (const auto& p : e.phases) known += (known.empty() ? "" : ", ") + p.name;
    throw std::invalid_argument("no phase '" + name + "'; known: " + known);
}

// The phase an engine kind runs when the user names only the engine (CLI measure).
inline const PhaseDescriptor& phase_for_engine(EngineKind kind) {
    for (const auto& e : experiments())
        for (const auto& p : e.phases)
            if (e.kind == ExperimentKind::hit_miss && p.engine == kind) return p;
    throw std::invalid_argument(std::string("no phase runs the engine kind ") + to_string(kind));
}

}  // namespace kvgate
