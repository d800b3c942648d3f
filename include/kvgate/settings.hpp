// Every knob in one table: CMake cache variable = environment variable = CLI flag.
// A CMake cache variable KVGATE_X reaches the tests as the environment variable KVGATE_X; the CLI
// flag --x overrides both. Bad values are misuse: std::invalid_argument naming the knob and the fix.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvgate {

struct Settings {
    std::string url;    // http://host:port of an OpenAI-compatible server (phase 1)
    std::string model;  // model name as the server knows it, or a path (phase 2)
    std::string api_key_env = "KVGATE_API_KEY";
    std::string endpoint = "chat";  // "chat" | "completions"
    int trials = 10;
    int warmup = 1;
    int settle_ms = 500;
    int context_a_tokens = 512;
    int context_b_tokens = 256;
    int query_tokens = 32;
    int max_output_tokens = 50;
    double threshold_pct = 10;
    double confidence = 0.95;
    double connect_timeout_s = 5;
    double read_timeout_s = 120;
    std::uint64_t seed = 0;  // 0: a fresh seed per run, so no run is served from an earlier run's cache
    std::string out = "reports";
};

struct SettingSpec {
    std::string key;   // CMake cache variable and environment variable
    std::string flag;  // CLI flag
    std::string help;
    std::function<void(Settings&, const std::string&)> set;
    std::function<std::string(const Settings&)> get;
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

inline SettingSpec int_knob(std::string key, std::string flag, std::string help, int Settings::*field, long long lo,
                            long long hi) {
    return {key, flag, std::move(help),
            [=](Settings& s, const std::string& v) { s.*field = static_cast<int>(parse_int(key, v, lo, hi)); },
            [=](const Settings& s) { return std::to_string(s.*field); }};
}

inline SettingSpec double_knob(std::string key, std::string flag, std::string help, double Settings::*field, double lo,
                               double hi) {
    return {key, flag, std::move(help), [=](Settings& s, const std::string& v) { s.*field = parse_double(key, v, lo, hi); },
            [=](const Settings& s) {
                std::string t = std::to_string(s.*field);
                while (t.size() > 1 && t.back() == '0') t.pop_back();
                if (!t.empty() && t.back() == '.') t.pop_back();
                return t;
            }};
}

inline SettingSpec string_knob(std::string key, std::string flag, std::string help, std::string Settings::*field) {
    return {key, flag, std::move(help), [=](Settings& s, const std::string& v) { s.*field = v; },
            [=](const Settings& s) { return s.*field; }};
}

}  // namespace detail

inline const std::vector<SettingSpec>& setting_table() {
    using namespace detail;
    static const std::vector<SettingSpec> table = {
        string_knob("KVGATE_URL", "--url", "OpenAI-compatible server to measure; empty: the test fixture's engine",
                    &Settings::url),
        string_knob("KVGATE_MODEL", "--model", "model name the server serves (phase 1) or model path (phase 2)",
                    &Settings::model),
        string_knob("KVGATE_API_KEY_ENV", "--api-key-env",
                    "name of the environment variable holding the API key (the key itself is never logged)",
                    &Settings::api_key_env),
        {"KVGATE_ENDPOINT", "--endpoint", "chat (/v1/chat/completions) or completions (/v1/completions)",
         [](Settings& s, const std::string& v) {
             if (v != "chat" && v != "completions")
                 throw std::invalid_argument("KVGATE_ENDPOINT: '" + v + "' is neither 'chat' nor 'completions'");
             s.endpoint = v;
         },
         [](const Settings& s) { return s.endpoint; }},
        int_knob("KVGATE_TRIALS", "--trials", "measured trials per arm", &Settings::trials, 2, 10000),
        int_knob("KVGATE_WARMUP", "--warmup", "warm-up trials per arm, measured but not counted", &Settings::warmup, 0,
                 1000),
        int_knob("KVGATE_SETTLE_MS", "--settle-ms", "pause between warming [A,B] and the measured query",
                 &Settings::settle_ms, 0, 60000),
        int_knob("KVGATE_CONTEXT_A_TOKENS", "--context-a-tokens", "size of the removable context A, in tokens",
                 &Settings::context_a_tokens, 16, 1 << 20),
        int_knob("KVGATE_CONTEXT_B_TOKENS", "--context-b-tokens", "size of the retained context B, in tokens",
                 &Settings::context_b_tokens, 16, 1 << 20),
        int_knob("KVGATE_QUERY_TOKENS", "--query-tokens", "size of the query Q, in tokens", &Settings::query_tokens, 4,
                 1 << 20),
        int_knob("KVGATE_MAX_OUTPUT_TOKENS", "--max-output-tokens",
                 "tokens generated by the measured query (phase 1; EOS ignored)", &Settings::max_output_tokens, 1,
                 1 << 20),
        double_knob("KVGATE_THRESHOLD_PCT", "--threshold-pct",
                    "least TTFT degradation (miss vs hit, %) the cache must be shown to save", &Settings::threshold_pct,
                    0, 1e6),
        double_knob("KVGATE_CONFIDENCE", "--confidence", "confidence level of the interval on the miss/hit ratio",
                    &Settings::confidence, 0.5, 0.999),
        double_knob("KVGATE_CONNECT_TIMEOUT_S", "--connect-timeout-s", "TCP connect deadline",
                    &Settings::connect_timeout_s, 0.01, 3600),
        double_knob("KVGATE_READ_TIMEOUT_S", "--read-timeout-s",
                    "deadline for the next byte of a response (before headers and mid-stream)",
                    &Settings::read_timeout_s, 0.01, 3600),
        {"KVGATE_SEED", "--seed", "content seed; 0 draws a fresh one per run (recorded in the report)",
         [](Settings& s, const std::string& v) {
             s.seed = static_cast<std::uint64_t>(detail::parse_int("KVGATE_SEED", v, 0, (1LL << 62)));
         },
         [](const Settings& s) { return std::to_string(s.seed); }},
        string_knob("KVGATE_OUT", "--out", "directory (tests) or file (CLI measure) the results JSON goes to",
                    &Settings::out),
    };
    return table;
}

// Checks that hold across knobs.
inline void validate(const Settings& s) {
    if (!s.url.empty() && s.url.rfind("http://", 0) != 0 && s.url.rfind("https://", 0) != 0)
        throw std::invalid_argument("KVGATE_URL: '" + s.url + "' must start with http:// or https://");
}

// Defaults, then environment variables.
inline Settings settings_from_env(Settings s = {}) {
    for (const auto& spec : setting_table())
        if (const char* v = std::getenv(spec.key.c_str()); v && *v) spec.set(s, v);
    validate(s);
    return s;
}

// Applies `--flag value` / `--flag=value` pairs; anything it does not know is returned for the caller.
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
        for (const auto& candidate : setting_table())
            if (candidate.flag == arg) spec = &candidate;
        if (!spec) {
            rest.push_back(args[i]);
            continue;
        }
        if (!has_value) {
            if (i + 1 >= args.size()) throw std::invalid_argument(arg + " needs a value (" + spec->help + ")");
            value = args[++i];
        }
        spec->set(s, value);
    }
    validate(s);
    return rest;
}

}  // namespace kvgate
