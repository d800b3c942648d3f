// Every knob in one table: CMake cache variable = environment variable = CLI flag.
// A CMake cache variable KVGATE_X reaches the tests as the environment variable KVGATE_X; the CLI
// flag --x overrides both. Bad values are misuse: std::invalid_argument naming the knob and the fix.
// Each default lives here once, in Settings' member initialisers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvgate/model/enum_names.hpp"
#include "kvgate/model/experiment.hpp"

namespace kvgate {

// Which first-token time the gate compares: the client's (the first token's arrival, what users
// wait for) or the engine's own prompt time.
enum class TtftSource { client, engine };
// Which OpenAI-compatible route carries the prompts.
enum class Endpoint { chat, completions };

namespace detail {
inline constexpr EnumName<TtftSource> ttft_source_names[] = {{TtftSource::client, "client"}, {TtftSource::engine, "engine"}};
inline constexpr EnumName<Endpoint> endpoint_names[] = {{Endpoint::chat, "chat"}, {Endpoint::completions, "completions"}};
}  // namespace detail

inline const char* to_string(TtftSource t) { return detail::enum_name(detail::ttft_source_names, t); }
inline const char* to_string(Endpoint e) { return detail::enum_name(detail::endpoint_names, e); }
inline std::optional<TtftSource> ttft_source_from_string(const std::string& s) {
    return detail::enum_from_name(detail::ttft_source_names, s);
}

// The settings come in sections, one per concern: each engine kind reads the target and its own
// options, each experiment its spec, the verdict the gate spec. The one table below sets them all.

// Which server, which model, over which route, and how long to wait for it: every engine's.
struct Target {
    std::string url;    // http://host:port of an OpenAI-compatible server (served engines)
    std::string model;  // model name as the server knows it, or a path (in-process engines)
    std::string api_key_env = "KVGATE_API_KEY";
    Endpoint endpoint = Endpoint::chat;
    double connect_timeout_s = 5;
    double read_timeout_s = 120;
    double request_timeout_s = 0;  // 0: request_deadline_s() derives it from the read timeout
};

// The Python side: the venv the fixtures' servers and the in-process engine run in, and the
// in-process engine's weights.
struct PythonOptions {
    std::string venv = ".venv";
    std::string dtype;  // "": the engine's choice
    bool dummy_weights = false;
};

struct LlamacppOptions {
    int cache_reuse = 0;  // llama.cpp's n_cache_reuse, sent with every request
};

// A fleet (engine vllm_fleet): Target::url is the router; these name what is behind it.
struct FleetOptions {
    std::string replica_urls;  // comma-separated replica roots; empty: asked from the router
    std::string policy;        // the router's policy (the fixture starts it; reports name it)
    int replicas = 2;          // replicas the fixture starts
};

// Experiment 1: the seed's sizes, and how many rounds of hit, miss and cold.
struct HitMissSpec {
    int trials = 10;      // rounds (one trial of each arm) before the first look
    int max_trials = 40;  // rounds at most while the verdict is undecided (at least `trials`)
    double time_budget_s = 300;  // no round starts after this much measuring while undecided; 0: no budget
    int warmup = 1;
    int settle_ms = 500;
    int context_a_tokens = 512;
    int context_b_tokens = 256;
    int query_tokens = 32;
    int max_output_tokens = 50;
};

// What the verdict compares, and against which bar.
struct GateSpec {
    double threshold_pct = 10;
    double confidence = 0.95;
    TtftSource ttft = TtftSource::client;
};

// Experiment 2's sweep (kvgate curve): context lengths, edit positions (0 = first exchange,
// 1 = last), trials (pairs of forward and backward passes balance drift).
struct CurveSpec {
    std::string contexts = "384,576";
    std::string positions = "0,0.25,0.5,0.75,1";
    int trials = 2;
    int settle_ms = 100;  // between a cell's warm and measured request; Experiment 1 keeps the seed's 500
};

struct BaselineSpec {
    std::string path;            // a results file (or a directory of them) from a known-good build; "": no baseline gate
    double regression_pct = 10;  // how far the saving may shrink against the baseline
    bool comparable = false;     // compare even where model, sizes, engine or endpoint differ
};

struct Settings {
    EngineKind engine = EngineKind::vllm_http;
    Target target;
    // The negative control is the run's, not one engine's: the in-process engine and llama.cpp act on it.
    bool prefix_caching = true;
    PythonOptions python;
    LlamacppOptions llamacpp;
    FleetOptions fleet;
    HitMissSpec hit_miss;
    GateSpec gate;
    CurveSpec curve;
    BaselineSpec baseline;
    std::uint64_t seed = 0;  // 0: a fresh seed per run, so no run is served from an earlier run's cache
    // Relative paths are taken from the working directory; the CLI is run from the repository root
    // and CTest runs the gpu tests and the report step there too.
    std::string out = "reports";
};

// How long one request may take in all. The read timeout restarts with every byte, so it alone
// lets a server that drips bytes or SSE comments hold a request forever. Unset, a few read
// timeouts: the first token may take nearly one, the rest of the reply must fit in the others.
inline constexpr int read_timeouts_per_deadline = 4;
inline double request_deadline_s(const Target& t) {
    return t.request_timeout_s > 0 ? t.request_timeout_s : read_timeouts_per_deadline * t.read_timeout_s;
}

// The least miss/hit TTFT ratio that counts as the cache saving `threshold_pct` percent.
inline double threshold_ratio(double threshold_pct) { return 1 + threshold_pct / 100; }

struct SettingSpec {
    std::string key;   // CMake cache variable and environment variable
    std::string flag;  // CLI flag
    std::string help;
    std::function<void(Settings&, const std::string&)> set;
    std::function<std::string(const Settings&)> get;
    bool is_switch = false;  // on/off: `--flag` alone turns it on, `--no-flag` off
};

namespace detail {

inline long long parse_int(const std::string& name, const std::string& v, long long lo, long long hi) {
    std::size_t used = 0;
    long long x = 0;
    try {
        x = std::stoll(v, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != v.size() || v.empty() || x < lo || x > hi)
        throw std::invalid_argument(name + ": '" + v + "' is not a whole number in [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + "]");
    return x;
}

inline std::uint64_t parse_uint64(const std::string& name, const std::string& v) {
    std::size_t used = 0;
    unsigned long long x = 0;
    try {
        if (!v.empty() && v[0] >= '0' && v[0] <= '9') x = std::stoull(v, &used);  // stoull accepts "-1"
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != v.size() || v.empty())
        throw std::invalid_argument(name + ": '" + v + "' is not a whole number in [0, 18446744073709551615]");
    return x;
}

inline double parse_double(const std::string& name, const std::string& v, double lo, double hi) {
    std::size_t used = 0;
    double x = 0;
    try {
        x = std::stod(v, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != v.size() || v.empty() || !(x >= lo && x <= hi))
        throw std::invalid_argument(name + ": '" + v + "' is not a number in [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + "]");
    return x;
}

inline bool parse_bool(const std::string& name, const std::string& v) {
    for (const char* yes : {"1", "ON", "on", "true", "TRUE", "yes"})
        if (v == yes) return true;
    for (const char* no : {"0", "OFF", "off", "false", "FALSE", "no"})
        if (v == no) return false;
    throw std::invalid_argument(name + ": '" + v + "' is neither on (1, ON, true, yes) nor off (0, OFF, false, no)");
}

// Where a knob's value lives: a member of one of the settings' sections, or of the settings
// themselves. Reading through a const Settings never writes.
template <class T>
struct FieldRef {
    std::function<T&(Settings&)> ref;
    T& operator()(Settings& s) const { return ref(s); }
    const T& operator()(const Settings& s) const { return ref(const_cast<Settings&>(s)); }
};
template <class Section, class T>
FieldRef<T> in(Section Settings::*section, T Section::*member) {
    return {[=](Settings& s) -> T& { return s.*section.*member; }};
}
template <class T>
FieldRef<T> top(T Settings::*member) {
    return {[=](Settings& s) -> T& { return s.*member; }};
}

inline SettingSpec int_knob(std::string key, std::string flag, std::string help, FieldRef<int> field, long long lo,
                            long long hi) {
    return {key, flag, std::move(help),
            [=](Settings& s, const std::string& v) { field(s) = static_cast<int>(parse_int(key, v, lo, hi)); },
            [=](const Settings& s) { return std::to_string(field(s)); }};
}

inline SettingSpec double_knob(std::string key, std::string flag, std::string help, FieldRef<double> field, double lo,
                               double hi) {
    return {key, flag, std::move(help), [=](Settings& s, const std::string& v) { field(s) = parse_double(key, v, lo, hi); },
            [=](const Settings& s) {
                std::string t = std::to_string(field(s));
                while (t.size() > 1 && t.back() == '0') t.pop_back();
                if (!t.empty() && t.back() == '.') t.pop_back();
                return t;
            }};
}

inline SettingSpec string_knob(std::string key, std::string flag, std::string help, FieldRef<std::string> field) {
    return {key, flag, std::move(help), [=](Settings& s, const std::string& v) { field(s) = v; },
            [=](const Settings& s) { return field(s); }};
}

// One of an enum's names; a wrong one is refused with the accepted names.
template <class E, std::size_t N>
SettingSpec enum_knob(std::string key, std::string flag, std::string help, FieldRef<E> field,
                      const EnumName<E> (&names)[N]) {
    return {key, flag, std::move(help),
            [=, &names](Settings& s, const std::string& v) {
                const auto value = enum_from_name(names, v);
                if (!value)
                    throw std::invalid_argument(key + ": '" + v + "' is not one of: " + enum_name_list(names));
                field(s) = *value;
            },
            [=, &names](const Settings& s) { return std::string(enum_name(names, field(s))); }};
}

// A comma-separated list of numbers, each checked by `check` (which throws naming the knob).
inline SettingSpec list_knob(std::string key, std::string flag, std::string help, FieldRef<std::string> field,
                             std::function<void(const std::string&)> check) {
    return {key, flag, std::move(help),
            [=](Settings& s, const std::string& v) {
                std::size_t from = 0;
                for (std::size_t comma = v.find(','); ; comma = v.find(',', from)) {
                    check(v.substr(from, comma == std::string::npos ? std::string::npos : comma - from));
                    if (comma == std::string::npos) break;
                    from = comma + 1;
                }
                field(s) = v;
            },
            [=](const Settings& s) { return field(s); }};
}

inline SettingSpec switch_knob(std::string key, std::string flag, std::string help, FieldRef<bool> field) {
    return {key, flag, std::move(help), [=](Settings& s, const std::string& v) { field(s) = parse_bool(key, v); },
            [=](const Settings& s) { return std::string(field(s) ? "ON" : "OFF"); }, true};
}

}  // namespace detail

// An http(s)://host[:port] server root. A trailing slash is dropped; a path is refused, because
// kvgate appends /v1/..., /tokenize and /metrics itself and a path would only fail later as
// connection or HTTP errors far from the cause.
inline std::string checked_url(const std::string& url) {
    const auto scheme = url.find("://");
    if (scheme == std::string::npos || (url.compare(0, scheme, "http") != 0 && url.compare(0, scheme, "https") != 0))
        throw std::invalid_argument("KVGATE_URL: '" + url + "' must start with http:// or https://");
    std::string out = url;
    while (out.size() > scheme + 3 && out.back() == '/') out.pop_back();
    if (const auto slash = out.find('/', scheme + 3); slash != std::string::npos)
        throw std::invalid_argument("KVGATE_URL: '" + url + "' has a path ('" + out.substr(slash) +
                                    "'); give the server's root, e.g. '" + out.substr(0, slash) +
                                    "': kvgate adds /v1/chat/completions, /tokenize and /metrics itself");
    if (out.size() == scheme + 3) throw std::invalid_argument("KVGATE_URL: '" + url + "' names no host");
    return out;
}

// KVGATE_FLEET_REPLICA_URLS as a list: each entry a server root, as KVGATE_URL.
inline std::vector<std::string> split_url_list(const std::string& csv) {
    std::vector<std::string> out;
    std::size_t from = 0;
    while (from <= csv.size() && !csv.empty()) {
        const auto comma = std::min(csv.find(',', from), csv.size());
        const std::string item = csv.substr(from, comma - from);
        if (item.empty())
            throw std::invalid_argument("KVGATE_FLEET_REPLICA_URLS: '" + csv +
                                        "' has an empty entry; list the replicas as http://host:port,http://host:port");
        try {
            out.push_back(checked_url(item));
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("KVGATE_FLEET_REPLICA_URLS: entry " + std::to_string(out.size() + 1) + ": " +
                                        std::string(e.what()).substr(std::string("KVGATE_URL: ").size()));
        }
        from = comma + 1;
    }
    return out;
}

inline const std::vector<SettingSpec>& setting_table() {
    using namespace detail;
    static const std::vector<SettingSpec> table = {
        {"KVGATE_ENGINE", "--engine", "engine kind to measure (CLI measure): " + engine_kind_list(),
         [](Settings& s, const std::string& v) { s.engine = engine_kind_from_string(v); },
         [](const Settings& s) { return std::string(to_string(s.engine)); }},
        {"KVGATE_URL", "--url",
         "OpenAI-compatible server to measure (http://host:port, no path); empty: the test fixture's engine",
         [](Settings& s, const std::string& v) { s.target.url = v.empty() ? v : checked_url(v); },
         [](const Settings& s) { return s.target.url; }},
        string_knob("KVGATE_MODEL", "--model", "model name the server serves, or model path (in-process engines)",
                    in(&Settings::target, &Target::model)),
        string_knob("KVGATE_API_KEY_ENV", "--api-key-env",
                    "name of the environment variable holding the API key (the key itself is never logged)",
                    in(&Settings::target, &Target::api_key_env)),
        enum_knob("KVGATE_ENDPOINT", "--endpoint", "chat (/v1/chat/completions) or completions (/v1/completions)",
                  in(&Settings::target, &Target::endpoint), endpoint_names),
        int_knob("KVGATE_TRIALS", "--trials", "measured trials per arm (rounds of hit, miss and cold) before the first look", in(&Settings::hit_miss, &HitMissSpec::trials), 2, 10000),
        int_knob("KVGATE_MAX_TRIALS", "--max-trials",
                 "most measured trials per arm while the verdict is undecided: rounds are added one at a time after "
                 "--trials, each look at the interval paid for (alpha spending); at or below --trials: no rounds added",
                 in(&Settings::hit_miss, &HitMissSpec::max_trials), 2, 10000),
        double_knob("KVGATE_TIME_BUDGET_S", "--time-budget-s",
                    "no round is added once the run has measured this long (seconds; 0: no budget); the rounds of "
                    "--trials always run",
                    in(&Settings::hit_miss, &HitMissSpec::time_budget_s), 0, 1e6),
        int_knob("KVGATE_WARMUP", "--warmup", "warm-up trials per arm, measured but not counted", in(&Settings::hit_miss, &HitMissSpec::warmup), 0,
                 1000),
        int_knob("KVGATE_SETTLE_MS", "--settle-ms", "pause between warming [A,B] and the measured query",
                 in(&Settings::hit_miss, &HitMissSpec::settle_ms), 0, 60000),
        int_knob("KVGATE_CONTEXT_A_TOKENS", "--context-a-tokens", "size of the removable context A, in tokens",
                 in(&Settings::hit_miss, &HitMissSpec::context_a_tokens), 16, 1 << 20),
        int_knob("KVGATE_CONTEXT_B_TOKENS", "--context-b-tokens", "size of the retained context B, in tokens",
                 in(&Settings::hit_miss, &HitMissSpec::context_b_tokens), 16, 1 << 20),
        int_knob("KVGATE_QUERY_TOKENS", "--query-tokens", "size of the query Q, in tokens", in(&Settings::hit_miss, &HitMissSpec::query_tokens), 4,
                 1 << 20),
        int_knob("KVGATE_MAX_OUTPUT_TOKENS", "--max-output-tokens",
                 "tokens generated by the measured query (EOS ignored; in-process engines generate 1)",
                 in(&Settings::hit_miss, &HitMissSpec::max_output_tokens), 1, 1 << 20),
        double_knob("KVGATE_THRESHOLD_PCT", "--threshold-pct",
                    "least TTFT degradation (%) both contrasts must show: cold [A',B,Q] vs hit (the cache's saving) and the "
                    "seed's miss [B,Q] vs hit (the invalidation cost)", in(&Settings::gate, &GateSpec::threshold_pct),
                    0, 1e6),
        enum_knob("KVGATE_TTFT", "--ttft",
                  "TTFT the gate compares: client (the first token's arrival, what users wait for) or engine (the server's "
         "own prompt time: llama.cpp's timings.prompt_ms, vLLM's per-request metrics), for a model so small that "
         "the server's per-request work (tokenizing) hides the prefill saving from the client",
                  in(&Settings::gate, &GateSpec::ttft), ttft_source_names),
        double_knob("KVGATE_CONFIDENCE", "--confidence", "confidence level of each contrast's interval, over all its looks (alpha spent across rounds)",
                    in(&Settings::gate, &GateSpec::confidence), 0.5, 0.999),
        double_knob("KVGATE_CONNECT_TIMEOUT_S", "--connect-timeout-s", "TCP connect deadline",
                    in(&Settings::target, &Target::connect_timeout_s), 0.01, 3600),
        double_knob("KVGATE_READ_TIMEOUT_S", "--read-timeout-s",
                    "deadline for the next byte of a response (before headers and mid-stream)",
                    in(&Settings::target, &Target::read_timeout_s), 0.01, 3600),
        double_knob("KVGATE_REQUEST_TIMEOUT_S", "--request-timeout-s",
                    "deadline for a whole request, headers to the stream's end (any request: timed, tokenize, "
                    "metrics); 0: " + std::to_string(read_timeouts_per_deadline) + " x KVGATE_READ_TIMEOUT_S",
                    in(&Settings::target, &Target::request_timeout_s), 0, 86400),
        {"KVGATE_SEED", "--seed", "content seed (any 64-bit value); 0 draws a fresh one per run (recorded in the report)",
         [](Settings& s, const std::string& v) { s.seed = detail::parse_uint64("KVGATE_SEED", v); },
         [](const Settings& s) { return std::to_string(s.seed); }},
        string_knob("KVGATE_OUT", "--out",
                    "directory the results files (results_<phase>.json) and the reports go to, for the CLI and the "
                    "tests alike",
                    top(&Settings::out)),
        string_knob("KVGATE_VENV", "--venv",
                    "Python virtual environment with vLLM: runs the test fixtures' server and the in-process engine",
                    in(&Settings::python, &PythonOptions::venv)),
        string_knob("KVGATE_DTYPE", "--dtype", "weight dtype for an in-process engine (float32, bfloat16...); empty: "
                                               "float32 without a GPU, else the engine's choice",
                    in(&Settings::python, &PythonOptions::dtype)),
        switch_knob("KVGATE_DUMMY_WEIGHTS", "--dummy-weights",
                    "in-process engine: random weights (vLLM --load-format dummy), same compute",
                    in(&Settings::python, &PythonOptions::dummy_weights)),
        switch_knob("KVGATE_PREFIX_CACHING", "--prefix-caching",
                    "prefix caching on (--no-prefix-caching: the negative control) for the in-process engine, and "
                    "for llama.cpp, whose requests then send cache_prompt false",
                    top(&Settings::prefix_caching)),
        int_knob("KVGATE_LLAMACPP_CACHE_REUSE", "--llamacpp-cache-reuse",
                 "llama.cpp: least chunk (tokens) the server may shift into place after the prompts diverge, sent "
                 "with every request as n_cache_reuse (it overrides --cache-reuse) and also the fixture's "
                 "--cache-reuse; 0 = off",
                 in(&Settings::llamacpp, &LlamacppOptions::cache_reuse), 0, 1 << 20),
        {"KVGATE_FLEET_REPLICA_URLS", "--fleet-replica-urls",
         "engine vllm_fleet: the replicas behind the router (KVGATE_URL), comma-separated http://host:port, whose "
         "/metrics place each request; empty: the router's /list_workers",
         [](Settings& s, const std::string& v) {
             split_url_list(v);
             s.fleet.replica_urls = v;
         },
         [](const Settings& s) { return s.fleet.replica_urls; }},
        string_knob("KVGATE_FLEET_POLICY", "--fleet-policy",
                    "engine vllm_fleet: the router's policy (vllm-router --policy); the fleet fixture starts the router "
                    "with it (empty: cache_aware) and reports name it",
                    in(&Settings::fleet, &FleetOptions::policy)),
        int_knob("KVGATE_FLEET_REPLICAS", "--fleet-replicas", "engine vllm_fleet: replicas the fleet fixture starts",
                 in(&Settings::fleet, &FleetOptions::replicas), 1, 64),
        list_knob("KVGATE_CURVE_CONTEXTS", "--curve-contexts",
                  "Experiment 2 (kvgate curve): conversation lengths in tokens, comma-separated",
                  in(&Settings::curve, &CurveSpec::contexts),
                  [](const std::string& x) { parse_int("KVGATE_CURVE_CONTEXTS", x, 64, 1 << 20); }),
        list_knob("KVGATE_CURVE_POSITIONS", "--curve-positions",
                  "Experiment 2: edit positions, comma-separated fractions (0 = first exchange, 1 = last)",
                  in(&Settings::curve, &CurveSpec::positions),
                  [](const std::string& x) { parse_double("KVGATE_CURVE_POSITIONS", x, 0, 1); }),
        int_knob("KVGATE_CURVE_TRIALS", "--curve-trials",
                 "Experiment 2: passes over the sweep (even: forward and backward pairs balance drift)",
                 in(&Settings::curve, &CurveSpec::trials), 1, 1000),
        int_knob("KVGATE_CURVE_SETTLE_MS", "--curve-settle-ms",
                 "Experiment 2: pause between a cell's warm and measured request (Experiment 1 uses "
                 "KVGATE_SETTLE_MS, the seed's 500 ms)",
                 in(&Settings::curve, &CurveSpec::settle_ms), 0, 60000),
        string_knob("KVGATE_BASELINE", "--baseline",
                    "results of a known-good build to compare against: a results file, or a directory holding "
                    "results_<phase>.json (e.g. a copy of an earlier run's KVGATE_OUT, outside this run's); empty: no baseline gate",
                    in(&Settings::baseline, &BaselineSpec::path)),
        double_knob("KVGATE_REGRESSION_PCT", "--regression-pct",
                    "the baseline gate fails when the miss/hit ratio shrank by more than this (%) against the baseline",
                    in(&Settings::baseline, &BaselineSpec::regression_pct), 0.1, 99),
        switch_knob("KVGATE_BASELINE_COMPARABLE", "--baseline-comparable",
                    "compare with a baseline whose model, sizes, engine or endpoint differ (otherwise refused)",
                    in(&Settings::baseline, &BaselineSpec::comparable)),
    };
    return table;
}

// Defaults, then environment variables.
inline Settings settings_from_env(Settings s = {}) {
    for (const auto& spec : setting_table())
        if (const char* v = std::getenv(spec.key.c_str()); v && *v) spec.set(s, v);
    return s;
}

// Applies `--flag value` / `--flag=value` (switches: `--flag`, `--no-flag`, `--flag=ON|OFF`);
// anything it does not know is returned for the caller.
inline std::vector<std::string> apply_flags(Settings& s, const std::vector<std::string>& args) {
    std::vector<std::string> rest;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string arg = args[i], value;
        bool has_value = false;
        if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
            has_value = true;
        }
        const SettingSpec* spec = nullptr;
        bool negated = false;
        for (const auto& candidate : setting_table()) {
            if (candidate.flag == arg) spec = &candidate;
            if (candidate.is_switch && "--no-" + candidate.flag.substr(2) == arg) spec = &candidate, negated = true;
        }
        if (!spec) {
            rest.push_back(args[i]);
            continue;
        }
        if (negated && has_value) throw std::invalid_argument(arg + " takes no value");
        if (spec->is_switch && !has_value) {
            value = negated ? "OFF" : "ON";
        } else if (!has_value) {
            if (i + 1 >= args.size()) throw std::invalid_argument(arg + " needs a value (" + spec->help + ")");
            value = args[++i];
        }
        spec->set(s, value);
    }
    return rest;
}

// The table as Markdown: `kvgate settings` prints it and docs/settings.md carries it (a unit test compares).
inline std::string settings_markdown() {
    const Settings defaults;
    std::string out = "| CMake / environment variable | CLI flag | default | meaning |\n|---|---|---|---|\n";
    for (const auto& spec : setting_table()) {
        const std::string d = spec.get(defaults);
        out += "| `" + spec.key + "` | `" + spec.flag + "` | " + (d.empty() ? "(empty)" : "`" + d + "`") + " | " +
               spec.help + " |\n";
    }
    return out;
}

}  // namespace kvgate
