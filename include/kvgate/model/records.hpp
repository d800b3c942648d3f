// The one data model: request stamps -> trial -> arm -> phase result.
// Everything measured lands here; statistics, verdicts and every reporter read it and nothing else.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "kvgate/model/enum_names.hpp"
#include "kvgate/model/experiment.hpp"
#include "kvgate/model/placement.hpp"
#include "kvgate/model/settings.hpp"
#include "kvgate/model/utf8.hpp"

namespace kvgate {

using Clock = std::chrono::steady_clock;

inline double ms_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double, std::milli>(to - from).count();
}

// The conditions of the experiment, each measured after warming [A,B]: hit [A,B,Q]; the seed's miss
// [B,Q] (A removed: the invalidation cost, a shorter prompt); cold [A',B,Q] (A' fresh, as long as A:
// the hit's length and server-side work with nothing cached, so cold vs hit isolates the cache's saving).
enum class Arm { hit, miss, cold };

inline constexpr Arm all_arms[] = {Arm::hit, Arm::miss, Arm::cold};
inline constexpr int arm_count = 3;

inline const char* to_string(Arm arm) {
    switch (arm) {
        case Arm::hit: return "cache_hit";
        case Arm::miss: return "cache_miss";
        case Arm::cold: return "cache_cold";
    }
    return "cache_hit";
}

// Short names for people: "hit", "miss", "cold".
inline const char* arm_word(Arm arm) {
    switch (arm) {
        case Arm::hit: return "hit";
        case Arm::miss: return "miss";
        case Arm::cold: return "cold";
    }
    return "hit";
}

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
    std::optional<Placement> placement{};  // a fleet: the replica that served it (placement.hpp); else none
};

// What a measured request should have reused, from the token ids the engine rendered before
// anything was timed (reuse.hpp), and what it did. `checked` false: the engine could not tokenize.
struct TrialReuse {
    bool checked = false;
    int expected = 0;         // tokens a hit must reuse: the whole blocks of its warm prompt (0: a miss)
    int shared = 0;           // whole blocks the rendered warm and measured prompts actually share
    int allowed = 0;          // the most any earlier prompt explains; more is contamination
    int template_shared = 0;  // what prompts other than its own warm prompt explain (template, BOS)
    std::string reported_class;  // reuse.hpp's ReuseClass name against usage.cached_tokens ("" unchecked)
    int divergence_at = -1;   // first token where two renderings differ (-1: they agree)
    std::string divergence;   // that, in words, with the text around it
    bool rendering_varies = false;  // the warm prompt rendered twice differs: `shared` is what two renderings
                                    // a moment apart share, and requests rendered later may share less
};

// One trial of one arm: the warm request, then the measured one.
struct Trial {
    int index = 0;  // 0-based position in the run's schedule (the seed's `index`); number() for people
    Arm arm = Arm::hit;
    bool warmup = false;
    int prompt_tokens_expected = 0;  // measured prompt, in the model's tokens (as sized by the prompt builder)
    int warm_prompt_tokens_expected = 0;
    RequestRecord warm;
    RequestRecord measured;
    // The seed's per-trial fields, derived from `measured` (definitions per phase in docs/results-schema.md).
    double ttft_ms = 0;
    double total_time_ms = 0;
    double throughput = 0;  // completion tokens per second of total_time
    TrialReuse reuse;

    int number() const { return index + 1; }  // "trial 1" is the first trial of the run
};

// Summary statistics of one arm's measured (non-warmup) trials.
struct ArmStats {
    int n = 0;
    double ttft_mean = 0, ttft_median = 0, ttft_stdev = 0, ttft_p90 = 0;
    double throughput_mean = 0, throughput_median = 0, throughput_stdev = 0, throughput_p90 = 0;
    int prompt_tokens = 0;  // median prompt tokens (server-reported where available)
    double cached_tokens_median = -1;  // -1: server reported none
};

// The engine's prefix-cache counters, deltas across the measured run (which metrics they are is
// the engine's knowledge).
struct CounterDeltas {
    bool available = false;
    double queries = 0;  // prompt tokens looked up
    double hits = 0;     // prompt tokens found cached
    std::string unavailable_because{};  // why not available where the server had counters (they fell: a restart)
    std::vector<CounterDeltas> per_replica{};  // a fleet: each replica's deltas (the fields above sum them)
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

// One timing comparison against the hit arm (other/hit TTFT over the rounds' pairs), as the sequential
// procedure decided it at its last look (sequential.hpp).
struct Contrast {
    Outcome outcome = Outcome::error;  // pass / fail / indeterminate on timing alone (error: too few pairs)
    double ratio = 0, low = 0, high = 0;  // median of the paired ratios and its interval (sign test)
    int pairs = 0;
    double look_confidence = 0;  // the confidence the interval was taken at (the look's share of alpha)
};

// The verdict: evidence first, then the two paired contrasts against the bar. The seed's fields
// (ratio, ratio_low, ratio_high) keep their meaning, miss/hit; the cold arm's contrast is an extension.
struct Verdict {
    Outcome outcome = Outcome::error;
    double threshold_pct = 0;   // as the run's settings had it (decide() copies it)
    double confidence = 0;
    double ratio = 0;           // median of the paired miss/hit TTFT ratios
    double ratio_low = 0;       // interval bounds on that ratio
    double ratio_high = 0;
    Contrast invalidation;      // miss/hit: the seed's test (ratio, ratio_low and ratio_high repeat it)
    Contrast cache;             // cold/hit: the cache's own saving at equal length
    int rounds = 0;             // measured rounds (one trial of each arm) the decision took
    std::string rounds_reason;  // why that many: decided at the first look, added while undecided, cap, budget
    // What the three arms imply (physics.hpp): the prefill saved per cached token, the server's cost per
    // prompt token, and where a contrast did not clear the bar, the sizes that would. NaN / "": not known.
    double saving_per_cached_token_ms = std::numeric_limits<double>::quiet_NaN();
    double per_prompt_token_ms = std::numeric_limits<double>::quiet_NaN();
    std::string physics;
    std::string method;         // how the interval was computed
    std::string reason;         // why this outcome, in numbers
    std::string fix;            // what to do when the numbers cannot support a verdict
    std::string evidence;       // "cache", "timing only", ...
};

// What the chat template (or the tokenizer: a BOS token) adds around every prompt, in tokens:
// found by rendering two prompts that differ in their first and last words and taking the common
// token prefix and suffix. -1: unknown (the engine could not render).
struct TemplateShape {
    int prefix_tokens = -1;  // shared by every prompt: a miss may find these cached
    int suffix_tokens = -1;  // after the content (e.g. "<|im_end|>\n<|im_start|>assistant\n"): the
                             // warm prompt's suffix is no prefix of the measured prompt
    bool known() const { return prefix_tokens >= 0 && suffix_tokens >= 0; }
};

struct EngineInfo {
    std::string name;      // "vllm", "llama.cpp", ...: the engine says
    std::string version;
    std::string url;       // served engines only
    std::string endpoint;  // "/v1/chat/completions", "LLM.generate", ...
    int block_size = 0;    // 0 = unknown
    bool prefix_caching = true;
    // Least chunk (tokens) the engine may reuse after the point of divergence, shifted into place
    // (llama.cpp's n_cache_reuse); 0 = it reuses a common prefix only. A miss [B,Q] can then reuse B.
    int shifted_chunk_reuse = 0;
    // A fleet: the replicas behind the router (placements index this list) and the router's policy.
    std::vector<std::string> replica_urls{};
    std::string router_policy{};  // as the settings name it; empty: not known

    bool fleet() const { return !replica_urls.empty(); }
    TemplateShape template_shape;  // measured by the protocol at the start of a run
};

// A fault is a value: which trial, which request, which stage, what the server said.
// The names (to_string) are stable: they are what the results JSON and docs/ carry.
enum class FaultKind {
    connection_refused,
    connect_timeout,
    read_timeout_before_headers,
    closed_before_headers,
    stalled_mid_stream,
    closed_mid_stream,
    transport,
    http_status,
    error_event,
    malformed_chunk,
    no_done,
    no_tokens,
    no_engine_ttft,
    python_exception,
    context_too_long,  // the run's largest request would not fit the engine's context: refused before any trial
};

enum class FaultRequest { setup, warm, measured };

enum class FaultStage { setup, connect, send, headers, stream, generate };

namespace detail {

inline constexpr EnumName<FaultKind> fault_kind_names[] = {
    {FaultKind::connection_refused, "connection_refused"},
    {FaultKind::connect_timeout, "connect_timeout"},
    {FaultKind::read_timeout_before_headers, "read_timeout_before_headers"},
    {FaultKind::closed_before_headers, "closed_before_headers"},
    {FaultKind::stalled_mid_stream, "stalled_mid_stream"},
    {FaultKind::closed_mid_stream, "closed_mid_stream"},
    {FaultKind::transport, "transport"},
    {FaultKind::http_status, "http_status"},
    {FaultKind::error_event, "error_event"},
    {FaultKind::malformed_chunk, "malformed_chunk"},
    {FaultKind::no_done, "no_done"},
    {FaultKind::no_tokens, "no_tokens"},
    {FaultKind::no_engine_ttft, "no_engine_ttft"},
    {FaultKind::python_exception, "python_exception"},
    {FaultKind::context_too_long, "context_too_long"},
};
inline constexpr EnumName<FaultRequest> fault_request_names[] = {
    {FaultRequest::setup, "setup"}, {FaultRequest::warm, "warm"}, {FaultRequest::measured, "measured"}};
inline constexpr EnumName<FaultStage> fault_stage_names[] = {
    {FaultStage::setup, "setup"},     {FaultStage::connect, "connect"}, {FaultStage::send, "send"},
    {FaultStage::headers, "headers"}, {FaultStage::stream, "stream"},   {FaultStage::generate, "generate"}};

}  // namespace detail

inline const char* to_string(FaultKind k) { return detail::enum_name(detail::fault_kind_names, k); }
inline const char* to_string(FaultRequest r) { return detail::enum_name(detail::fault_request_names, r); }
inline const char* to_string(FaultStage s) { return detail::enum_name(detail::fault_stage_names, s); }
inline std::optional<FaultKind> fault_kind_from_string(const std::string& s) {
    return detail::enum_from_name(detail::fault_kind_names, s);
}
inline std::optional<FaultRequest> fault_request_from_string(const std::string& s) {
    return detail::enum_from_name(detail::fault_request_names, s);
}
inline std::optional<FaultStage> fault_stage_from_string(const std::string& s) {
    return detail::enum_from_name(detail::fault_stage_names, s);
}

// Masks every occurrence of `secret` (nothing when it is empty). Runs before any cut, so that a
// secret straddling the cut cannot leave its prefix behind.
inline std::string redacted(std::string text, const std::string& secret) {
    if (secret.empty()) return text;
    const std::string mask = "***";  // searching on past it: a key like "*" must not match its own mask
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + mask.size()))
        text.replace(at, secret.size(), mask);
    return text;
}

// A server's words for a fault message: secret masked first, then cut to `limit` bytes, then made
// valid UTF-8 (a cut may split a character).
inline std::string fault_excerpt(const std::string& text, std::size_t limit, const std::string& secret = {}) {
    std::string out = redacted(text, secret);
    if (out.size() > limit) out = out.substr(0, limit) + "...";
    return valid_utf8(out);
}

struct Fault {
    FaultKind kind = FaultKind::transport;
    FaultStage stage = FaultStage::setup;
    std::string message;  // human-readable, includes the server's own words
    // Set by the protocol: the trial's number (1-based, as people count; 0 = before any trial)
    // and which of its requests.
    int trial = 0;
    FaultRequest request = FaultRequest::setup;
};

// The baseline gate's comparison (baseline_gate.hpp), as the results file records it.
struct BaselineRecord {
    std::string path;      // the baseline's results file
    std::string revision;  // its git revision and when it ran
    std::string timestamp;
    Outcome outcome = Outcome::error;  // pass / fail / indeterminate / error (baseline.hpp)
    std::string reason, fix, method;
    double regression_pct = 0, confidence = 0;
    double baseline_ratio = 0, current_ratio = 0;        // geometric-mean miss/hit of each run
    double ratio_estimate = 0, ratio_low = 0, ratio_high = 0, ratio_bar = 0;  // current / baseline
    double hit_estimate = 0, hit_low = 0, hit_high = 0, hit_bar = 0;          // hit TTFT, current / baseline
    std::vector<std::string> differences;  // identity differences the user declared comparable
    std::vector<double> baseline_pair_ratios;  // the baseline's per-pair miss/hit ratios (the figure's dots)
};

struct PhaseResult {
    PhaseDescriptor phase;
    Settings settings;             // as the run used them; settings.seed is the seed drawn
    bool sizes_estimated = false;  // true when the model's tokenizer could not be asked
    std::string timestamp;         // ISO 8601 UTC, when the run started
    std::string git_revision;
    EngineInfo engine;
    std::vector<Trial> trials;  // every trial, warmups included, in run order
    ArmStats hit_stats, miss_stats, cold_stats;
    double ttft_degradation_pct = 0;  // (mean miss - mean hit) / mean hit * 100 TTFT, as the seed
    std::string block_rounding;       // how much of the warm prompt whole blocks keep from reuse ("" none)
    CounterDeltas counters;
    Verdict verdict;
    std::optional<BaselineRecord> baseline;  // set when a baseline gate ran (KVGATE_BASELINE)
    std::optional<Fault> fault;
    double wall_time_s = 0;
    bool complete = false;  // false when a fault stopped the run early
    std::optional<std::string> early_stop;  // why a stop rule ended the run before its last trial

    ArmStats& stats(Arm arm) { return arm == Arm::hit ? hit_stats : arm == Arm::miss ? miss_stats : cold_stats; }
    const ArmStats& stats(Arm arm) const {
        return arm == Arm::hit ? hit_stats : arm == Arm::miss ? miss_stats : cold_stats;
    }

    std::vector<const Trial*> measured(Arm arm) const {
        std::vector<const Trial*> out;
        for (const auto& t : trials)
            if (t.arm == arm && !t.warmup) out.push_back(&t);
        return out;
    }
};

}  // namespace kvgate
