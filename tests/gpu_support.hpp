// What the gpu tests share: finding the engine a fixture started, and skipping honestly.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

#include "fixture_env.hpp"
#include "kvgate.hpp"

namespace kvgate::testing {

inline std::string env_or(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

// No engine is a skip for a user without one, and a failure where the set-up guarantees one (CI):
// there a skip could only hide a breakage. A skip ends the process with KVGATE_SKIP_EXIT_CODE
// (tests/CMakeLists.txt), which CTest's SKIP_RETURN_CODE reads: an exit code, not a marker in the
// output, which also carries server text and so could forge one (a server's HTTP 500 did).
// _Exit: nothing of the test's runs after it (the reason is flushed first).
[[noreturn]] inline void skip_or_fail(const std::string& why) {
    if (env_or("KVGATE_REQUIRE_ENGINE", "") == "1") FAIL(why << " (KVGATE_REQUIRE_ENGINE=1: a skip is a failure)");
    std::cout << "skipped: " << why << std::endl;
    std::_Exit(KVGATE_SKIP_EXIT_CODE);
}

// Settings for a served phase against the fixture's engine (skip_or_fail if it started none).
inline Settings http_settings(const std::string& fixture, EngineKind kind = EngineKind::vllm_http) {
    Settings s = with_fixture_engine(settings_from_env(), read_engine_env(fixture));
    s.engine = kind;
    if (s.target.url.empty())
        skip_or_fail("no engine: fixture '" + fixture + "' started none (see engine." + fixture +
                     ".start's output) and KVGATE_URL is not set");
    return s;
}

// Runs a phase on the engine the settings name (built by make_engine, as the CLI does) through the
// run-and-record loop `kvgate run` uses: progress lines, the results file checkpointed after every
// trial, and the final result written (also after a fault) before any assertion can stop the test.
inline PhaseResult measure_and_report(Settings s, const PhaseDescriptor& phase, const StopRule& stop = {}) {
    s.engine = phase.engine;
    const std::filesystem::path path = results_path(s.out, phase);
    const auto engine = make_engine(s);
    auto result = record_phase(*engine, s, phase, path, std::cout, stop);
    std::cout << headline_text(phase_headline(result), path) << std::flush;
    return result;
}

// A negative control: only whether the gate fails matters, and the cache evidence decides that, not
// timing. So no warm-up pair (it steadies timings), and the run stops once the evidence has decided.
inline PhaseResult measure_negative_control(Settings s, const PhaseDescriptor& phase) {
    s.out = env_or("KVGATE_NEGATIVE_OUT", "negative");
    s.hit_miss.warmup = 0;
    return measure_and_report(std::move(s), phase, stop_when_evidence_decides());
}

}  // namespace kvgate::testing
