// The one run-and-record loop that `kvgate run` and the gpu tests share, and the one answer every
// experiment gives: a results file checkpointed after every step and written at the end (also after
// a fault), progress lines while it runs, and a headline in the verdict vocabulary (outcome, reason,
// fix) that the CLI prints and turns into its exit status.
#pragma once

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kvgate/model/records.hpp"

#ifndef KVGATE_GIT_REVISION
#define KVGATE_GIT_REVISION "unknown"  // the build defines it (CMakeLists.txt: git describe)
#endif

namespace kvgate {

inline std::string utc_timestamp() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// What every run records about itself before its first request, whatever the experiment: when it
// started (UTC), the build, and the content seed: the setting's, or a fresh odd one where it is 0, so
// that no run is served from an earlier run's cache.
struct RunHeader {
    std::string timestamp;
    std::string git_revision;
    std::uint64_t seed = 0;
};

inline RunHeader run_header(std::uint64_t seed_setting) {
    std::random_device entropy;
    const std::uint64_t seed =
        seed_setting != 0 ? seed_setting : (entropy() | (std::uint64_t{entropy()} << 32)) | 1;
    return {utc_timestamp(), KVGATE_GIT_REVISION, seed};
}

// One run's answer, whatever the experiment.
struct RunHeadline {
    Outcome outcome = Outcome::error;
    std::string reason;
    std::string fix;                   // empty: nothing to change
    std::vector<std::string> details;  // what the run measured, a line each
};

// The CLI's exit status for an outcome: 0 pass, 1 fail, 2 indeterminate or unverified, 3 error.
inline int exit_code(Outcome o) {
    switch (o) {
        case Outcome::pass: return 0;
        case Outcome::fail: return 1;
        case Outcome::indeterminate:
        case Outcome::unverified: return 2;
        case Outcome::error: return 3;
    }
    return 3;
}

inline std::string headline_text(const RunHeadline& h, const std::filesystem::path& results) {
    std::string text = std::string(to_string(h.outcome)) + ": " + h.reason + "\n";
    if (!h.fix.empty()) text += "fix: " + h.fix + "\n";
    for (const auto& line : h.details) text += "  " + line + "\n";
    return text + "results: " + results.string() + "\n";
}

// What a runner calls after each step: the result so far and the step's progress line.
template <class Result>
using Checkpoint = std::function<void(const Result& partial, const std::string& progress)>;

// Runs `run(checkpoint)` and records its result at `path`: every checkpoint prints its progress line
// to `progress` and rewrites the file (atomically, through `write`), so a fault or a kill loses no
// completed step; the final result is written before it is returned, so before any caller's
// assertion can stop a test.
template <class Result, class Run, class Write>
Result run_and_record(const std::filesystem::path& path, std::ostream& progress, Run&& run, Write&& write) {
    std::filesystem::create_directories(path.parent_path());
    Result result = run(Checkpoint<Result>([&](const Result& partial, const std::string& line) {
        progress << line << std::endl;
        write(partial, path);
    }));
    write(result, path);
    return result;
}

}  // namespace kvgate
