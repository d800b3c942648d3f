// What the gpu tests share: finding the engine a fixture started, and skipping honestly.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>

#include "kvgate.hpp"

namespace kvgate::testing {

inline std::string env_or(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

// No engine is a skip for a user without one, and a failure where the set-up guarantees one (CI):
// there a skip could only hide a breakage.
inline void skip_or_fail(const std::string& why) {
    if (env_or("KVGATE_REQUIRE_ENGINE", "") == "1") FAIL(why << " (KVGATE_REQUIRE_ENGINE=1: a skip is a failure)");
    std::cout << env_or("KVGATE_SKIP_MARKER", "KVGATE-SKIP:") << " " << why << std::endl;
}

// The engine.env a fixture wrote (engine.sh: KEY=value lines, values shell-quoted without spaces).
inline std::map<std::string, std::string> read_engine_env(const std::string& fixture) {
    std::map<std::string, std::string> out;
    std::ifstream in(env_or("KVGATE_ENGINE_STATE", "") + "/" + fixture + "/engine.env");
    for (std::string line; std::getline(in, line);)
        if (auto eq = line.find('='); eq != std::string::npos) {
            std::string value = line.substr(eq + 1);
            std::string unquoted;
            for (std::size_t i = 0; i < value.size(); ++i) {  // printf %q escapes with backslashes
                if (value[i] == '\\' && i + 1 < value.size()) ++i;
                unquoted += value[i];
            }
            out[line.substr(0, eq)] = unquoted;
        }
    return out;
}

// The fixture's engine, where it started one, wins over the environment: the negative control's
// local no-cache engine serves its own model name even where KVGATE_URL and KVGATE_MODEL name
// another server (with that server's name the local engine answers 404).
inline Settings with_fixture_engine(Settings s, const std::map<std::string, std::string>& engine_env) {
    if (auto url = engine_env.find("KVGATE_URL"); url != engine_env.end() && !url->second.empty())
        s.url = checked_url(url->second);
    if (auto model = engine_env.find("KVGATE_MODEL"); model != engine_env.end() && !model->second.empty())
        s.model = model->second;
    // llama.cpp's cache switches are request fields: the client must send what the fixture's server was
    // started for (its no-cache variant only changes the server's default).
    if (auto cache = engine_env.find("KVGATE_LLAMACPP_CACHE_PROMPT"); cache != engine_env.end())
        s.prefix_caching = cache->second != "0";
    if (auto reuse = engine_env.find("KVGATE_LLAMACPP_CACHE_REUSE"); reuse != engine_env.end() && !reuse->second.empty())
        s.llamacpp_cache_reuse = static_cast<int>(detail::parse_int("KVGATE_LLAMACPP_CACHE_REUSE", reuse->second, 0, 1 << 20));
    return s;
}

// Settings for a served phase against the fixture's engine; nullopt (after skip_or_fail) if none.
inline std::optional<Settings> http_settings(const std::string& fixture, EngineKind kind = EngineKind::vllm_http) {
    Settings s = with_fixture_engine(settings_from_env(), read_engine_env(fixture));
    s.engine = kind;
    if (s.url.empty()) {
        skip_or_fail("no engine: fixture '" + fixture + "' started none (see engine." + fixture +
                     ".start's output) and KVGATE_URL is not set");
        return std::nullopt;
    }
    return s;
}

// Runs a phase on the engine the settings name (built by make_engine, as the CLI does), with
// progress lines, checkpointing the results file after every trial, and writes the final result
// (also after a fault) before any assertion can stop the test.
inline PhaseResult measure_and_report(Settings s, const PhaseDescriptor& phase) {
    s.engine = phase.engine;
    const std::filesystem::path path = results_path(s.out, phase);
    std::filesystem::create_directories(path.parent_path());
    const auto engine = make_engine(s);
    auto result = run_phase(*engine, s, phase, [&](const PhaseResult& partial, const Trial& trial) {
        std::cout << progress_line(partial, trial) << std::endl;
        write_results(partial, path);
    });
    write_results(result, path);
    std::cout << path.string() << ": " << to_string(result.verdict.outcome) << " - " << result.verdict.reason
              << (result.verdict.fix.empty() ? "" : "\n  fix: " + result.verdict.fix) << "\n  hit median "
              << result.hit_stats.ttft_median << " ms, miss median " << result.miss_stats.ttft_median
              << " ms; cached tokens (median) hit " << result.hit_stats.cached_tokens_median << ", miss "
              << result.miss_stats.cached_tokens_median << "; cache counters hits +" << result.counters.hits
              << " of queries +" << result.counters.queries << "; wall " << result.wall_time_s << " s" << std::endl;
    return result;
}

}  // namespace kvgate::testing
