// The one data model: request stamps -> trial -> arm -> phase result.
// Everything measured lands here; statistics, verdicts and every reporter read it and nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvgate {

using Clock = std::chrono::steady_clock;

inline double ms_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double, std::milli>(to - from).count();
}

// The two conditions of the experiment.
enum class Arm { hit, miss };

inline const char* to_string(Arm arm) { return arm == Arm::hit ? "cache_hit" : "cache_miss"; }

// Where a request's moments fell, in ms after the request was handed to the socket
// (phase 2: after the call into the engine). Absent stamps are std::nullopt.
struct RequestStamps {
    std::optional<double> headers_ms;      // response headers parsed
    std::optional<double> first_byte_ms;   // first body byte
    std::optional<double> first_event_ms;  // first complete SSE event
    std::optional<double> first_token_ms;  // first generated token: this is TTFT
    std::optional<double> last_token_ms;   // last generated token
    std::optional<double> done_ms;         // response complete ([DONE] or call returned)
};

// The server's own account of a request. Negative = the server did not say.
struct Usage {
    int prompt_tokens = -1;
    int completion_tokens = -1;
    int cached_tokens = -1;
};

// What one request (warm or measured) produced.
struct RequestRecord {
    RequestStamps stamps;
    Usage usage;
    std::optional<double> engine_ttft_ms;  // the engine's own first-token latency, where it reports one
};

// One trial of one arm: the warm request, then the measured one.
struct Trial {
    int index = 0;  // 0-based position in the run's schedule
    Arm arm = Arm::hit;
    bool warmup = false;
    int prompt_tokens_expected = 0;  // measured prompt, in the model's tokens (as sized by the prompt builder)
    int warm_prompt_tokens_expected = 0;
    RequestRecord warm;
    RequestRecord measured;
    // The seed's per-trial fields, derived from `measured` (definitions per phase in the README).
    double ttft_ms = 0;
    double total_time_ms = 0;
    double throughput = 0;  // completion tokens per second of total_time
};

// Summary statistics of one arm's measured (non-warmup) trials.
struct ArmStats {
    int n = 0;
    double ttft_mean = 0, ttft_median = 0, ttft_stdev = 0, ttft_p90 = 0;
    double throughput_mean = 0, throughput_median = 0, throughput_stdev = 0, throughput_p90 = 0;
    int prompt_tokens = 0;  // median prompt tokens (server-reported where available)
    double cached_tokens_median = -1;  // -1: server reported none
};

// Prometheus prefix-cache counters, deltas across the measured run.
struct CounterDeltas {
    bool available = false;
    double queries = 0;  // vllm:prefix_cache_queries_total (prompt tokens looked up)
    double hits = 0;     // vllm:prefix_cache_hits_total (prompt tokens found cached)
};

enum class Outcome { pass, fail, indeterminate, unverified, error };

inline const char* to_string(Outcome o) {
    switch (o) {
        case Outcome::pass: return "pass";
        case Outcome::fail: return "fail";
        case Outcome::indeterminate: return "indeterminate";
        case Outcome::unverified: return "unverified";
        case Outcome::error: return "error";
    }
    return "error";
}

// The paired interval on miss/hit TTFT and what it decided.
struct Verdict {
    Outcome outcome = Outcome::error;
    double threshold_pct = 10;
    double confidence = 0.95;
    double ratio = 0;           // geometric mean of the paired miss/hit TTFT ratios
    double ratio_low = 0;       // interval bounds on that ratio
    double ratio_high = 0;
    std::string method;         // how the interval was computed
    std::string reason;         // why this outcome, in numbers
    std::string fix;            // what to do when the numbers cannot support a verdict
    std::string evidence;       // "cache", "timing only", ...
};

struct PhaseConfig {
    int context_size_a = 512;
    int context_size_b = 256;
    int query_size = 32;
    int max_output_tokens = 50;
    int num_trials = 10;
    int warmup_trials = 1;
    int settle_ms = 500;
    std::uint64_t seed = 0;
    bool sizes_estimated = false;  // true when the model's tokenizer could not be asked
};

struct EngineInfo {
    std::string name = "vllm";
    std::string version;
    std::string url;       // phase 1 only
    std::string endpoint;  // "/v1/chat/completions", "LLM.generate", ...
    int block_size = 0;    // 0 = unknown
    bool prefix_caching = true;
};

// A fault is a value: which trial, which request, which stage, what the server said.
struct Fault {
    std::string kind;     // stable name, e.g. "connection_refused", "http_status"
    int trial = -1;
    std::string request;  // "warm" | "measured" | "setup"
    std::string stage;    // "connect", "headers", "stream", ...
    std::string message;  // human-readable, includes the server's own words
};

struct PhaseResult {
    std::string phase;  // "phase1_http_api" | "phase2_python_api"
    std::string model;
    std::string timestamp;  // ISO 8601 UTC, when the run started
    std::string git_revision;
    PhaseConfig config;
    EngineInfo engine;
    std::vector<Trial> trials;  // every trial, warmups included, in run order
    ArmStats hit_stats, miss_stats;
    double ttft_degradation_pct = 0;  // (mean miss - mean hit) / mean hit * 100 TTFT, as the seed
    CounterDeltas counters;
    Verdict verdict;
    std::optional<Fault> fault;
    double wall_time_s = 0;
    bool complete = false;  // false when a fault stopped the run early

    std::vector<const Trial*> measured(Arm arm) const {
        std::vector<const Trial*> out;
        for (const auto& t : trials)
            if (t.arm == arm && !t.warmup) out.push_back(&t);
        return out;
    }
};

}  // namespace kvgate
