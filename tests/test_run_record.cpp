// The shared run-and-record loop: checkpoints and the final write, the progress lines, and the one
// verdict vocabulary's text and exit status.
#include <catch2/catch.hpp>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "kvgate/experiment/run_record.hpp"
#include "kvgate/model/report_files.hpp"

using namespace kvgate;
namespace fs = std::filesystem;

namespace {

struct RecordedSteps {
    std::vector<int> done;
    bool complete = false;
};

fs::path run_record_dir(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / ("kvgate_run_record_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    return dir;
}

}  // namespace

TEST_CASE("run_and_record writes every checkpoint and then the final result, creating the directory",
          "[run_record]") {
    const fs::path dir = run_record_dir("checkpoints");
    const fs::path path = dir / "nested" / "results.txt";
    std::ostringstream progress;
    std::vector<std::string> seen_on_disk;
    auto write = [&](const RecordedSteps& s, const fs::path& p) {
        write_file_atomically(p, std::to_string(s.done.size()) + (s.complete ? " complete" : " partial"));
    };
    const RecordedSteps result = run_and_record<RecordedSteps>(path, progress, [&](const Checkpoint<RecordedSteps>& checkpoint) {
        RecordedSteps s;
        for (int i = 1; i <= 3; ++i) {
            s.done.push_back(i);
            checkpoint(s, "step " + std::to_string(i));
            seen_on_disk.push_back(report_detail::read_whole_file(path));  // the checkpoint is on disk now
        }
        s.complete = true;
        return s;
    }, write);
    CHECK(result.done.size() == 3);
    CHECK(seen_on_disk == std::vector<std::string>{"1 partial", "2 partial", "3 partial"});
    CHECK(report_detail::read_whole_file(path) == "3 complete");
    CHECK(progress.str() == "step 1\nstep 2\nstep 3\n");
    fs::remove_all(dir);
}

TEST_CASE("run_and_record writes a result that ended early (a fault) like any other", "[run_record]") {
    const fs::path dir = run_record_dir("fault");
    const fs::path path = dir / "results.txt";
    std::ostringstream progress;
    run_and_record<RecordedSteps>(path, progress, [](const Checkpoint<RecordedSteps>&) { return RecordedSteps{}; },
                          [](const RecordedSteps& s, const fs::path& p) { write_file_atomically(p, std::to_string(s.done.size())); });
    CHECK(report_detail::read_whole_file(path) == "0");
    CHECK(progress.str().empty());
    fs::remove_all(dir);
}

TEST_CASE("one verdict vocabulary: exit status by outcome, and the headline's text", "[run_record]") {
    CHECK(exit_code(Outcome::pass) == 0);
    CHECK(exit_code(Outcome::fail) == 1);
    CHECK(exit_code(Outcome::indeterminate) == 2);
    CHECK(exit_code(Outcome::unverified) == 2);
    CHECK(exit_code(Outcome::error) == 3);
    CHECK(headline_text({Outcome::fail, "slow", "", {"a", "b"}}, "out/r.json") ==
          "fail: slow\n  a\n  b\nresults: out/r.json\n");
    CHECK(headline_text({Outcome::indeterminate, "close", "more trials", {}}, "r.json") ==
          "indeterminate: close\nfix: more trials\nresults: r.json\n");
}

TEST_CASE("every run's header: a UTC timestamp, the build, the seed given or a fresh odd one", "[run_record]") {
    const RunHeader given = run_header(42);
    CHECK(given.seed == 42);
    CHECK(given.timestamp.size() == std::string("2026-12-07T12:00:00Z").size());
    CHECK(given.timestamp.back() == 'Z');
    CHECK_FALSE(given.git_revision.empty());
    const RunHeader a = run_header(0), b = run_header(0);
    CHECK(a.seed % 2 == 1);
    CHECK(a.seed != b.seed);  // fresh content per run: no run is served from an earlier one's cache
}
