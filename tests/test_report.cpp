// Reporting: results JSON (seed schema + extensions) both ways, the figures' data and scripts,
// rendering through gnuplot, the Markdown summary, and that bad inputs overwrite nothing.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "kvgate/model/results_json.hpp"
#include "kvgate/report/report.hpp"

namespace fs = std::filesystem;
using namespace kvgate;

const Experiment e1 = experiment("experiment1");  // by value: GCC 13 -Wdangling-reference

namespace {

// Without gnuplot the rendering is not tested: a warning for a user, a failure where the build says
// the tools are guaranteed (KVGATE_REQUIRE_ENGINE=ON: the ci and experiment presets).
bool gnuplot_or_skip() {
    if (gnuplot_available()) return true;
#if KVGATE_REQUIRE_GNUPLOT
    FAIL("gnuplot not found, and this build requires it (KVGATE_REQUIRE_ENGINE=ON): install gnuplot-nox");
#endif
    WARN("gnuplot not found: rendering not tested");
    return false;
}

struct TempDir {
    fs::path path;
    TempDir() {
        static std::atomic<int> counter{0};
        path = fs::temp_directory_path() /
               ("kvgate-test-report-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const fs::path& p, const std::string& content) { std::ofstream(p, std::ios::binary) << content; }

std::set<std::string> listing(const fs::path& dir) {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
    return names;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ReportError& e) {
        return e.what();
    }
    FAIL("expected a ReportError");
    return "";
}

// One warm-up trial per arm (TTFT 999 ms, so it shows if it leaks into figures), then three
// measured trials per arm around hit_ms / miss_ms. Stats are set by hand to known values.
PhaseResult known_phase(const std::string& phase, double hit_ms, double miss_ms) {
    PhaseResult r;
    r.phase = phase_descriptor(phase);
    r.settings.target.model = "facebook/opt-125m";
    r.timestamp = "2024-11-28T21:00:00Z";
    r.git_revision = "abc1234";
    r.settings.hit_miss.trials = 3;
    r.settings.hit_miss.warmup = 1;
    r.settings.seed = 1234567890123ULL;
    r.engine.name = "vllm";
    r.engine.version = "0.6.3.post1";
    r.engine.url = "http://127.0.0.1:8000";
    r.engine.endpoint = "/v1/chat/completions";
    r.engine.block_size = 16;
    for (int i = 0; i <= 3; ++i)
        for (Arm arm : {Arm::hit, Arm::miss}) {
            Trial t;
            t.index = 2 * i + (arm == Arm::miss ? 1 : 0);
            t.arm = arm;
            t.warmup = i == 0;
            t.prompt_tokens_expected = arm == Arm::hit ? 800 : 288;
            t.warm_prompt_tokens_expected = 768;
            t.ttft_ms = t.warmup ? 999 : (arm == Arm::hit ? hit_ms + (i - 2) : miss_ms + 2 * (i - 2));
            t.total_time_ms = t.ttft_ms + 250;
            t.throughput = (arm == Arm::hit ? 200 : 150) - (i - 2);
            t.measured.stamps = {1.5, 2.0, 2.5, t.ttft_ms, std::nullopt, t.ttft_ms + 250};
            t.measured.usage = {t.prompt_tokens_expected, 50, arm == Arm::hit ? 768 : 0};
            if (i == 3) t.measured.usage.cached_tokens = -1;  // the server did not say
            if (i == 2) t.measured.engine_ttft_ms = t.ttft_ms - 3;
            t.warm.stamps.first_token_ms = 5;
            t.warm.usage = {768, 1, -1};
            r.trials.push_back(t);
        }
    r.hit_stats = {3, hit_ms + 1, hit_ms, 2, hit_ms + 1.5, 199, 200, 5, 204, 800, 768};
    r.miss_stats = {3, miss_ms + 1, miss_ms, 4, miss_ms + 3, 149, 150, 6, 155, 288, -1};
    r.ttft_degradation_pct = (miss_ms - hit_ms) / hit_ms * 100;
    r.counters = {true, 2400, 2304};
    // A verdict as files before the cold arm recorded it: the seed's miss/hit ratio and interval, no contrasts.
    r.verdict.outcome = Outcome::pass;
    r.verdict.threshold_pct = 10;
    r.verdict.confidence = 0.95;
    r.verdict.ratio = 2.25;
    r.verdict.ratio_low = 2.1;
    r.verdict.ratio_high = 2.4;
    r.verdict.method = "paired bootstrap";
    r.verdict.reason = "interval above 1.10";
    r.verdict.evidence = "cache";
    r.wall_time_s = 12.5;
    r.complete = true;
    return r;
}

// `r` with the cold arm added as kvgate measures it now: rounds of hit, miss, cold (trial index 3 x round
// + arm), cold trials around cold_ms, and the verdict's two contrasts, rounds and physics as decide()
// records them (the reporters only read them).
PhaseResult with_cold(PhaseResult r, double cold_ms) {
    for (Trial& t : r.trials) t.index = 3 * (t.index / 2) + (t.arm == Arm::miss ? 1 : 0);
    for (int i = 0; i <= 3; ++i) {
        Trial t;
        t.index = 3 * i + 2;
        t.arm = Arm::cold;
        t.warmup = i == 0;
        t.prompt_tokens_expected = 800;
        t.warm_prompt_tokens_expected = 768;
        t.ttft_ms = t.warmup ? 999 : cold_ms + 3 * (i - 2);
        t.total_time_ms = t.ttft_ms + 250;
        t.throughput = 120 - (i - 2);
        t.measured.stamps = {1.5, 2.0, 2.5, t.ttft_ms, std::nullopt, t.ttft_ms + 250};
        t.measured.usage = {800, 50, i == 3 ? -1 : 0};
        if (i == 2) t.measured.engine_ttft_ms = t.ttft_ms - 3;
        t.warm.stamps.first_token_ms = 5;
        t.warm.usage = {768, 1, -1};
        r.trials.push_back(t);
    }
    std::sort(r.trials.begin(), r.trials.end(), [](const Trial& a, const Trial& b) { return a.index < b.index; });
    r.cold_stats = {3, cold_ms + 1, cold_ms, 6, cold_ms + 4.5, 119, 120, 4, 123, 800, 0};
    Verdict& v = r.verdict;
    v.outcome = Outcome::indeterminate;
    v.cache = {Outcome::pass, 3.1, 2.9, 3.3, 3, 0.975};
    v.invalidation = {Outcome::indeterminate, 1.08, 1.02, 1.15, 3, 0.975};
    v.ratio = 1.08;
    v.ratio_low = 1.02;
    v.ratio_high = 1.15;
    v.rounds = 3;
    v.rounds_reason = "undecided after 3 rounds when the time budget ran out (300 s of 300 s, --time-budget-s)";
    v.saving_per_cached_token_ms = 0.0421;
    v.per_prompt_token_ms = 0.0123;
    v.physics = "the cache saves 42.1 us per cached token on this engine; removing A shows (miss/hit clears the "
                "bar) from B = 1900 tokens (A = 512, Q = 32)";
    v.reason = "the cache's saving (cold/hit) clears the bar and the seed's invalidation cost (miss/hit) straddles "
               "the bar";
    return r;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Where gnuplot would run a command (defined below, with the injection tests).
std::vector<std::string> live_backquotes(const std::string& script);

// A results file the version before the cold arm wrote (commit d212373): hit and miss only, no contrasts.
const fs::path legacy_results = fs::path(__FILE__).parent_path() / "data" / "results_phase1_d212373.json";

bool no_temporaries(const fs::path& dir) {
    for (const auto& name : listing(dir))
        if (contains(name, ".tmp-")) return false;
    return true;
}

}  // namespace

TEST_CASE("a PhaseResult round-trips through JSON and a results file", "[report]") {
    PhaseResult r = known_phase("phase1", 40, 90);
    r.fault = Fault{FaultKind::http_status, FaultStage::headers, "HTTP 500: \"engine dead\"", 3, FaultRequest::measured};
    r.complete = false;
    r.ttft_degradation_pct = std::numeric_limits<double>::quiet_NaN();

    const nlohmann::json doc = to_json(r);
    PhaseResult back = phase_result_from_json(doc, "results_phase1.json");
    CHECK(to_json(back) == doc);

    REQUIRE(back.trials.size() == r.trials.size());
    for (std::size_t i = 0; i < r.trials.size(); ++i) {  // run order restored from `index`
        CHECK(back.trials[i].index == r.trials[i].index);
        CHECK(back.trials[i].arm == r.trials[i].arm);
        CHECK(back.trials[i].warmup == r.trials[i].warmup);
        CHECK(back.trials[i].ttft_ms == r.trials[i].ttft_ms);
        CHECK(back.trials[i].measured.stamps.headers_ms == r.trials[i].measured.stamps.headers_ms);
        CHECK(back.trials[i].measured.engine_ttft_ms == r.trials[i].measured.engine_ttft_ms);
        CHECK(back.trials[i].measured.usage.cached_tokens == r.trials[i].measured.usage.cached_tokens);
        CHECK(back.trials[i].warm.usage.cached_tokens == -1);
        CHECK(back.trials[i].warm_prompt_tokens_expected == 768);
    }
    CHECK_FALSE(back.trials[2].measured.stamps.last_token_ms.has_value());
    CHECK(back.settings.seed == 1234567890123ULL);
    CHECK(back.phase == phase_descriptor("phase1"));
    CHECK(back.miss_stats.cached_tokens_median == -1);
    CHECK(back.hit_stats.ttft_p90 == 41.5);
    CHECK(back.engine.block_size == 16);
    CHECK(back.counters.hits == 2304);
    CHECK(back.verdict.outcome == Outcome::pass);
    CHECK(std::isnan(back.ttft_degradation_pct));
    REQUIRE(back.fault.has_value());
    CHECK(back.fault->message == "HTTP 500: \"engine dead\"");
    CHECK(back.fault->trial == 3);
    CHECK_FALSE(back.complete);

    TempDir dir;
    write_results(r, dir.path / "results_phase1.json");
    CHECK(to_json(read_results_file(dir.path / "results_phase1.json")) == doc);
    CHECK(listing(dir.path) == std::set<std::string>{"results_phase1.json"});
}

TEST_CASE("results JSON has every key of the seed's schema, and kvgate's extensions", "[report]") {
    const nlohmann::json j = to_json(known_phase("phase1", 40, 90));
    CHECK(j.at("phase") == "phase1_http_api");
    CHECK(j.at("model") == "facebook/opt-125m");
    CHECK(j.at("timestamp").is_string());
    for (const char* key : {"context_size_a", "context_size_b", "max_output_tokens", "num_trials", "warmup_trials"})
        CHECK(j.at("config").at(key).is_number_integer());
    CHECK(j.at("config").at("num_trials") == 3);
    for (const char* arm : {"cache_hit", "cache_miss"}) {
        const auto& trials = j.at(arm).at("trials");
        REQUIRE(trials.size() == 3);  // only counted trials, as a seed reader counts them
        const auto& warmups = j.at(arm).at("warmup_trials");  // the warm-up is kept beside them, marked
        REQUIRE(warmups.size() == 1);
        CHECK(warmups[0].at("warmup") == true);
        int measured = 0;
        for (const auto& t : trials) {
            for (const char* key : {"ttft_ms", "total_time_ms", "throughput", "prompt_tokens", "completion_tokens"})
                CHECK(t.at(key).is_number());
            measured += t.at("warmup") == false;
            CHECK(t.at("stamps").at("last_token_ms").is_null());  // absent stamp
            CHECK(t.at("warm").at("usage").at("cached_tokens").is_null());
        }
        CHECK(measured == j.at("config").at("num_trials"));
        for (const char* key :
             {"ttft_mean", "ttft_median", "ttft_stdev", "throughput_mean", "throughput_stdev", "prompt_tokens"})
            CHECK(j.at(arm).at("stats").at(key).is_number());
        CHECK(j.at(arm).at("stats").at("n") == 3);
    }
    CHECK(j.at("ttft_degradation_pct") == Approx(125.0));
    CHECK(j.at("cache_miss").at("stats").at("cached_tokens_median").is_null());
    CHECK(j.at("kvgate").at("version").is_string());
    CHECK(j.at("engine").at("version") == "0.6.3.post1");
    CHECK(j.at("cache_evidence").at("prometheus").at("hits_delta") == 2304);
    CHECK(j.at("verdict").at("outcome") == "pass");
    CHECK(j.at("fault").is_null());
    CHECK(j.at("complete") == true);
}

TEST_CASE("an invalid document names the file, the key's JSON path and what to do", "[report]") {
    const nlohmann::json good = to_json(known_phase("phase1", 40, 90));
    auto error_for = [&](const std::function<void(nlohmann::json&)>& spoil) {
        nlohmann::json doc = good;
        spoil(doc);
        return error_of([&] { phase_result_from_json(doc, "results_phase1.json"); });
    };

    std::string missing = error_for([](nlohmann::json& d) { d["cache_hit"]["stats"].erase("ttft_mean"); });
    CHECK(contains(missing, "results_phase1.json: cache_hit.stats.ttft_mean missing"));
    CHECK(contains(missing, "re-run the phase"));

    CHECK(contains(error_for([](nlohmann::json& d) { d["config"]["num_trials"] = "ten"; }),
                   "results_phase1.json: config.num_trials is string, expected a whole number"));
    CHECK(contains(error_for([](nlohmann::json& d) { d["cache_miss"]["trials"][1].erase("stamps"); }),
                   "cache_miss.trials[1].stamps missing"));
    CHECK(contains(error_for([](nlohmann::json& d) { d["verdict"]["outcome"] = "maybe"; }),
                   "verdict.outcome is 'maybe', expected one of pass, fail"));
    CHECK(contains(error_for([](nlohmann::json& d) { d = nlohmann::json::array(); }),
                   "the top level is array, expected an object"));
    CHECK(contains(error_for([](nlohmann::json& d) { d["kvgate"]["schema"] = results_schema_version + 1; }),
                   "update kvgate"));
}

TEST_CASE("read_results_file explains missing, empty, malformed and truncated files", "[report]") {
    TempDir dir;
    const fs::path file = dir.path / "results_phase1.json";
    CHECK(contains(error_of([&] { read_results_file(file); }), "results_phase1.json: no such file"));

    spit(file, "");
    CHECK(contains(error_of([&] { read_results_file(file); }), "is empty"));

    spit(file, "{\"phase\": oops}");
    std::string malformed = error_of([&] { read_results_file(file); });
    CHECK(contains(malformed, file.string() + ": not valid JSON at byte 11 of 15"));

    const std::string whole = to_json(known_phase("phase1", 40, 90)).dump(2);
    spit(file, whole.substr(0, whole.size() / 2));
    std::string truncated = error_of([&] { read_results_file(file); });
    CHECK(contains(truncated, file.string() + ": truncated"));
    CHECK(contains(truncated, "re-run the phase"));

    CHECK(contains(error_of([&] { read_results_file(dir.path); }), "cannot read"));
}

TEST_CASE("write_file_atomically replaces the whole file or nothing", "[report]") {
    TempDir dir;
    const fs::path file = dir.path / "out.txt";
    write_file_atomically(file, "first");
    write_file_atomically(file, "second");
    CHECK(slurp(file) == "second");

    std::string no_dir = error_of([&] { write_file_atomically(dir.path / "absent" / "out.txt", "x"); });
    CHECK(contains(no_dir, (dir.path / "absent" / "out.txt").string() + ": cannot create"));
    CHECK(contains(no_dir, "No such file or directory"));

    fs::create_directory(dir.path / "taken");  // rename() onto a directory fails after the temp file is written
    CHECK(contains(error_of([&] { write_file_atomically(dir.path / "taken", "x"); }), "taken: cannot replace"));
    CHECK(fs::is_directory(dir.path / "taken"));
    CHECK(listing(dir.path) == std::set<std::string>{"out.txt", "taken"});
}

TEST_CASE("figure data and scripts hold the known numbers", "[report]") {
    const std::vector<PhaseResult> both = {known_phase("phase1", 40, 90),
                                           known_phase("phase2", 35, 82)};

    const std::string data = results_data(e1, both);
    CHECK(contains(data, "# [P1-hit]"));
    // x ttft_median ttft_stdev throughput_median throughput_stdev n ttft_mean throughput_mean, then
    // the value labels (y text) of both panels.
    CHECK(contains(data, "\n0 40.000 2.000 200.000 5.000 3 41.000 199.000 20.000 \"40.0 ms\" 100.000 \"200.0 tok/s\"\n"
                         "\n\n# [P1-miss]"));
    CHECK(contains(data, "\n1 90.000 4.000 150.000 6.000 3 91.000 149.000 45.000 \"90.0 ms\" 75.000 "
                         "\"150.0 tok/s\"\n"));
    CHECK(contains(data, "\n0 35.000 2.000 200.000 5.000 3 36.000 199.000 17.500 \"35.0 ms\""));
    // Measured trials spread over their bar: x ttft throughput index arm.
    CHECK(contains(data, "\n-0.200 39.000 201.000 2 0\n0.000 40.000 200.000 4 0\n0.200 41.000 199.000 6 0\n"));
    CHECK(contains(data, "\n0.800 88.000 151.000 3 1\n"));
    CHECK_FALSE(contains(data, "999"));  // warm-up trials stay out

    const std::string script = results_script(e1, both);
    CHECK(contains(script, "set multiplot layout 2,3"));
    CHECK(contains(script, "set offsets 0.5, 0.5"));
    CHECK(contains(script, "datafile = 'experiment1_results.dat'"));
    CHECK(contains(script, "outfile = 'experiment1_results.png'"));
    CHECK(contains(script, "TTFT (ms)"));
    CHECK(contains(script, "throughput (tokens/s)"));
    CHECK(contains(script, "cache miss: +125.0% TTFT"));
    CHECK(contains(script, "cache miss: +134.3% TTFT"));
    CHECK(contains(script, "facebook/opt-125m"));
    CHECK(contains(script, "vllm 0.6.3.post1"));
    CHECK(contains(script, "index '[P2-trials]'"));
    CHECK_FALSE(contains(script, fs::temp_directory_path().string()));  // relative names only

    const std::string comparison = phase_comparison_data(e1, both);
    // x ttft_median ttft_stdev n ttft_mean condition label_y label
    CHECK(contains(comparison, "\n0.000 40.000 2.000 3 41.000 \"P1-hit\" 42.000 \"40.0 ms\"\n"
                               "2.500 35.000 2.000 3 36.000 \"P2-hit\" 37.000 \"35.0 ms\"\n"));
    CHECK(contains(comparison, "\n1.000 90.000 4.000 3 91.000 \"P1-miss\" 94.000 \"90.0 ms\"\n"
                               "3.500 82.000 4.000 3 83.000 \"P2-miss\" 86.000 \"82.0 ms\"\n"));
    const std::string comparison_script = phase_comparison_script(e1, both);
    CHECK(contains(comparison_script, "median of measured trials, error bars \u00b11 stdev"));
    CHECK(contains(comparison_script,
                   "HTTP overhead (P1 \u2212 P2, median TTFT): cache hit +5.0 ms \u00b7 cache miss +8.0 ms"));
    CHECK(contains(comparison_script, "set offsets 0.5, 0.5"));
}

TEST_CASE("figures for one phase draw what exists and say so", "[report]") {
    const std::vector<PhaseResult> one = {known_phase("phase2", 35, 82)};
    const std::string script = results_script(e1, one);
    CHECK(contains(script, "set multiplot layout 1,3"));
    CHECK(contains(script, "(only Phase 2 results exist)"));
    CHECK_FALSE(contains(results_data(e1, one), "[P1-"));

    const std::string comparison = phase_comparison_data(e1, one);
    CHECK(contains(comparison, "\"P2-hit\""));
    CHECK(contains(comparison, "\"P2-miss\""));
    CHECK_FALSE(contains(comparison, "\"P1-"));
    CHECK(contains(phase_comparison_script(e1, one), "HTTP overhead needs results of a served phase"));
}

TEST_CASE("a three-arm result draws every arm and the contrasts it was decided on", "[report]") {
    using report_detail::gp_quote;
    const std::vector<PhaseResult> both = {with_cold(known_phase("phase1", 40, 43), 124),
                                           with_cold(known_phase("phase2", 35, 38), 110)};
    const std::string data = results_data(e1, both);
    // Every arm's summary block; the cold arm's bar at x = 2.
    for (const char* block : {"# [P1-hit]", "# [P1-miss]", "# [P1-cold]", "# [P2-cold]"}) CHECK(contains(data, block));
    CHECK(contains(data, "\n2 124.000 6.000 120.000 4.000 3 125.000 119.000 62.000 \"124.0 ms\" 60.000 "
                         "\"120.0 tok/s\"\n"));
    // Its measured trials as dots over its bar (arm column 2); warm-ups stay out.
    CHECK(contains(data, "\n1.800 121.000 121.000 5 2\n2.000 124.000 120.000 8 2\n2.200 127.000 119.000 11 2\n"));
    CHECK(contains(data, "\n-0.200 39.000 201.000 3 0\n"));
    CHECK_FALSE(contains(data, "999"));
    // The contrasts as the verdict recorded them: x ratio low high pairs look_confidence bar.
    CHECK(contains(data, "# [P1-cache]"));
    CHECK(contains(data, "\n0 3.100 2.900 3.300 3 0.975000 1.100\n"));
    CHECK(contains(data, "# [P1-invalidation]"));
    CHECK(contains(data, "\n1 1.080 1.020 1.150 3 0.975000 1.100\n"));

    const std::string script = results_script(e1, both);
    CHECK(contains(script, "set multiplot layout 2,3"));
    CHECK(contains(script, report_detail::gp_tic("cold [A',B,Q], n=3") + " 2)"));
    CHECK(contains(script, "index '[P1-cold]' using 1:2:3 with boxerrorbars lc rgb '#009E73' title 'cache cold'"));
    CHECK(contains(script, "index '[P2-cold]' using 1:11:12 with labels"));
    // The decision panel: both intervals against the bar, each with its look's confidence, pairs and outcome.
    CHECK(contains(script, "index '[P1-cache]' using 1:2:3:4 with yerrorbars"));
    CHECK(contains(script, "index '[P1-invalidation]' using 1:2:3:4 with yerrorbars"));
    CHECK(contains(script, "1.100 with lines dt 2 lw 2 lc rgb '#CC0000' title " + gp_quote("bar 1.100 (+10.0%)")));
    CHECK(contains(script, "set xtics (" + report_detail::gp_tic("cold/hit: the cache's saving") + " 0, " +
                               report_detail::gp_tic("miss/hit: invalidation cost") + " 1)"));
    CHECK(contains(script, gp_quote("3.100 [2.900, 3.300]\n97.5% interval, 3 pairs\nPASS: clears the bar") +
                               " at first 0.08, first 3.100"));
    CHECK(contains(script, gp_quote("1.080 [1.020, 1.150]\n97.5% interval, 3 pairs\nINDETERMINATE: straddles the bar") +
                               " at first 1.08, first 1.080"));
    CHECK(contains(script, "decision: INDETERMINATE"));
    CHECK(contains(script, "3 rounds: undecided after 3 rounds when the time budget ran out"));
    CHECK(live_backquotes(script).empty());

    const std::string comparison = phase_comparison_data(e1, both);
    CHECK(contains(comparison, "# [cold] cache_cold per phase\n"
                               "2.000 124.000 6.000 3 125.000 \"P1-cold\" 130.000 \"124.0 ms\"\n"
                               "5.500 110.000 6.000 3 111.000 \"P2-cold\" 116.000 \"110.0 ms\"\n"));
    CHECK(contains(comparison, "\n3.500 35.000 2.000 3 36.000 \"P2-hit\""));  // a wider stride for three bars
    const std::string comparison_script = phase_comparison_script(e1, both);
    CHECK(contains(comparison_script, "index '[cold]' using 1:2:3:xtic(6) with boxerrorbars lc rgb '#009E73' title " +
                                          gp_quote("cache cold [A',B,Q]")));
    CHECK(contains(comparison_script, "cache miss +5.0 ms \u00b7 cache cold +14.0 ms"));
    CHECK(contains(comparison_script, "at first 4.50, graph -0.1 center"));  // P2's name under its three bars

    // Mixed: a phase without the cold arm keeps two bars, and its name under them.
    const std::vector<PhaseResult> mixed = {both[0], known_phase("phase2", 35, 82)};
    const std::string mixed_data = phase_comparison_data(e1, mixed);
    CHECK(contains(mixed_data, "\"P1-cold\""));
    CHECK_FALSE(contains(mixed_data, "\"P2-cold\""));
    CHECK(contains(phase_comparison_script(e1, mixed), "at first 4.00, graph -0.1 center"));
    CHECK_FALSE(contains(results_data(e1, mixed), "[P2-cold]"));

    // A fleet's placement figure marks the cold arm's queries too.
    PhaseResult fleet = with_cold(known_phase("fleet_phase1", 40, 43), 124);
    fleet.engine.replica_urls = {"http://127.0.0.1:8001", "http://127.0.0.1:8002"};
    for (Trial& t : fleet.trials) t.warm.placement = t.measured.placement = Placement{PlacementOutcome::served, 0, {0}, 768, 0};
    CHECK(contains(placement_data(experiment("fleet"), {fleet}), "\n3 0 0 2 1 0\n"));
    CHECK(contains(placement_script(experiment("fleet"), {fleet}), gp_quote("query, cache-cold arm [A',B,Q]")));

    if (!gnuplot_or_skip()) return;
    TempDir dir;
    for (const auto& p : both) write_results(p, dir.path / p.phase.results_file);
    write_reports(dir.path, dir.path / "reports");
    for (const char* png : {"experiment1_results.png", "experiment1_phase_comparison.png"})
        CHECK(slurp(dir.path / "reports" / png).rfind("\x89PNG", 0) == 0);
    CHECK(contains(slurp(dir.path / "reports" / "experiment1_results.dat"), "# [P2-cold]"));
    CHECK(no_temporaries(dir.path / "reports"));
    render_figure(placement_figure(experiment("fleet"), {fleet}), dir.path);
    CHECK(slurp(dir.path / "fleet_placement.png").rfind("\x89PNG", 0) == 0);
}

TEST_CASE("the Markdown summary shows the cold arm and the decision: both contrasts, the rounds and why, the physics",
          "[report]") {
    const PhaseResult r = with_cold(known_phase("phase1", 40, 43), 124);
    const std::string md = summary_markdown({r}, {});
    CHECK(contains(md, "| | cache hit [A,B,Q] | cache miss [B,Q] | cache cold [A',B,Q] |\n|---|---:|---:|---:|\n"));
    CHECK(contains(md, "| TTFT median (ms) | 40.0 | 43.0 | 124.0 |"));
    CHECK(contains(md, "| TTFT mean ± stdev (ms) | 41.0 ± 2.00 | 44.0 ± 4.00 | 125.0 ± 6.00 |"));
    CHECK(contains(md, "| cached tokens (median) | 768 | not reported | 0 |"));
    CHECK(contains(md, "| measured trials (n) | 3 | 3 | 3 |"));
    CHECK(contains(md, "| expected reuse (from the rendered ids) | not checked | not checked | not checked |"));
    CHECK(contains(md, "hit 768, miss not reported, cold 0"));
    CHECK(contains(md, "### Decision\n\n"));
    CHECK(contains(md, "- **Cache saving, cold/hit TTFT** (cold [A',B,Q] is as long as the hit, with nothing cached): "
                       "3.100, 97.5% interval [2.900, 3.300] over 3 pairs — **PASS**, clears the bar\n"));
    CHECK(contains(md, "- **Invalidation cost, miss/hit TTFT** (A removed: the seed's test): 1.080, 97.5% interval "
                       "[1.020, 1.150] over 3 pairs — **INDETERMINATE**, straddles the bar\n"));
    CHECK(contains(md, "cold and miss must each be at least 10.0% slower than the hit (ratio ≥ 1.100)"));
    CHECK(contains(md, "- **Rounds:** 3 measured rounds (one trial of each arm per round): undecided after 3 rounds "
                       "when the time budget ran out (300 s of 300 s, --time-budget-s)\n"));
    CHECK(contains(md, "- **Cost per token:** the cache saves 42.1 µs per cached token; the server spends 12.3 µs on "
                       "every prompt token, cached or not\n"));
    CHECK(contains(md, "- **Physics:** " + r.verdict.physics + "\n"));
    CHECK(contains(md, "- **Saving at equal length:** 84.0 ms (median cold − median hit TTFT)"));

    // Nothing known of the costs: no line for them, and no NaN as a number.
    PhaseResult unknown = r;
    unknown.verdict.saving_per_cached_token_ms = unknown.verdict.per_prompt_token_ms =
        std::numeric_limits<double>::quiet_NaN();
    unknown.verdict.physics.clear();
    unknown.verdict.cache = {Outcome::error, std::numeric_limits<double>::quiet_NaN(), 0, 0, 0, 0};
    const std::string bare = summary_markdown({unknown}, {});
    CHECK_FALSE(contains(bare, "Cost per token"));
    CHECK_FALSE(contains(bare, "**Physics:**"));
    CHECK(contains(bare, "- **Cache saving, cold/hit TTFT** (cold [A',B,Q] is as long as the hit, with nothing cached): "
                         "no paired rounds\n"));
    CHECK_FALSE(contains(bare, "nan"));
}

TEST_CASE("a results file written before the cold arm renders with hit and miss only", "[report]") {
    TempDir dir;
    fs::copy_file(legacy_results, dir.path / "results_phase1.json");
    const PhaseResult r = read_results_file(dir.path / "results_phase1.json");
    REQUIRE_FALSE(report_detail::has_cold_arm(r));

    const std::string data = results_data(e1, {r});
    CHECK(contains(data, "# [P1-hit]"));
    CHECK(contains(data, "# [P1-miss]"));
    CHECK_FALSE(contains(data, "-cold]"));
    CHECK_FALSE(contains(data, "[P1-cache]"));
    CHECK(contains(data, "# [P1-invalidation]"));
    CHECK(contains(data, "\n1 4.100 3.900 4.300 0 0.950000 1.100\n"));  // the seed's interval, pairs not recorded
    const std::string script = results_script(e1, {r});
    CHECK_FALSE(contains(script, "cache cold"));
    CHECK_FALSE(contains(script, "[P1-cache]"));
    CHECK(contains(script, "set label 6 " + report_detail::gp_quote("no cold arm in this result") +
                               " at first 0, graph 0.5 center"));
    CHECK(contains(script, report_detail::gp_quote("4.100 [3.900, 4.300]\n95% interval, pairs not recorded") +
                               " at first 1.08, first 4.100"));
    CHECK(contains(script, "rounds not recorded"));
    const std::string comparison = phase_comparison_data(e1, {r});
    CHECK_FALSE(contains(comparison, "[cold]"));
    CHECK_FALSE(contains(phase_comparison_script(e1, {r}), "[cold]"));

    const std::string md = summary_markdown({r}, {});
    CHECK(contains(md, "| | cache hit [A,B,Q] | cache miss [B,Q] |\n|---|---:|---:|\n"));
    CHECK(contains(md, "| TTFT median (ms) | 124.5 | 513.5 |\n"));
    CHECK_FALSE(contains(md, "cache cold"));
    CHECK_FALSE(contains(md, "Saving at equal length"));
    CHECK(contains(md, "- **Cache saving, cold/hit TTFT** (cold [A',B,Q] is as long as the hit, with nothing cached): "
                       "no cold arm in this result\n"));
    CHECK(contains(md, "4.100, 95% interval [3.900, 4.300]\n"));
    CHECK(contains(md, "- **Rounds:** not recorded (a results file from before the sequential decision; 2 trials per "
                       "arm were configured)\n"));
    CHECK_FALSE(contains(md, "Cost per token"));
    for (const std::string& text : {data, script, md}) {
        CHECK_FALSE(contains(text, "nan"));
        CHECK_FALSE(contains(text, "inf "));
    }

    if (!gnuplot_or_skip()) return;
    write_reports(dir.path, dir.path / "reports");
    for (const char* png : {"experiment1_results.png", "experiment1_phase_comparison.png"})
        CHECK(slurp(dir.path / "reports" / png).rfind("\x89PNG", 0) == 0);
    CHECK_FALSE(contains(slurp(dir.path / "reports" / "summary.md"), "cache cold"));
}

TEST_CASE("the Markdown summary carries verdict, numbers, evidence, provenance and figures", "[report]") {
    PhaseResult r = known_phase("phase1", 40, 90);
    r.verdict.fix = "raise --trials";
    r.fault = Fault{FaultKind::stalled_mid_stream, FaultStage::stream, "no byte for 120 s", 2, FaultRequest::measured};
    PhaseResult bare = known_phase("phase2", 35, 82);
    bare.hit_stats.cached_tokens_median = -1;
    bare.counters.available = false;
    bare.verdict.outcome = Outcome::unverified;

    const std::string md = summary_markdown({r, bare}, {"experiment1_results.png", "experiment1_phase_comparison.png"});
    CHECK(contains(md, "## Phase 1: HTTP streaming API"));
    CHECK(contains(md, "**PASS** — interval above 1.10"));
    CHECK(contains(md, "**Fix:** raise --trials"));
    CHECK(contains(md, "| TTFT median (ms) | 40.0 | 90.0 |"));
    CHECK(contains(md, "- **Saving:** 50.0 ms (median miss − median hit TTFT)"));
    CHECK(contains(md, "- **Invalidation cost, miss/hit TTFT** (A removed: the seed's test): 2.250, 95% interval "
                       "[2.100, 2.400]\n"));
    CHECK(contains(md, "- **Method:** paired bootstrap\n"));
    CHECK(contains(md, "a miss must be at least 10.0% slower than the hit (ratio ≥ 1.100)"));
    CHECK(contains(md, "| measured trials (n) | 3 | 3 |"));
    CHECK(contains(md, "hit 768, miss not reported"));
    CHECK(contains(md, "2400 tokens looked up, 2304 hit (96.0%)"));
    CHECK(contains(md, "vllm 0.6.3.post1"));
    CHECK(contains(md, "block size 16"));
    CHECK(contains(md, "`facebook/opt-125m`"));
    CHECK(contains(md, "git revision `abc1234`"));
    CHECK(contains(md, "**Fault:** `stalled_mid_stream` in trial 2, measured request, stage stream"));
    CHECK(contains(md, "no byte for 120 s"));
    CHECK(contains(md, "**UNVERIFIED**"));
    CHECK(contains(md, "timing only"));
    CHECK(contains(md, "![experiment1_results](experiment1_results.png)"));
    CHECK(contains(md, "![experiment1_phase_comparison](experiment1_phase_comparison.png)"));
}

TEST_CASE("write_reports needs at least one results file and names both", "[report]") {
    TempDir dir;
    std::string error = error_of([&] { write_reports(dir.path, dir.path / "out"); });
    CHECK(contains(error, "results_phase1.json"));
    CHECK(contains(error, "results_phase2.json"));
    CHECK_FALSE(fs::exists(dir.path / "out"));
}

TEST_CASE("a malformed or truncated results file overwrites nothing", "[report]") {
    TempDir dir;
    const fs::path out = dir.path / "reports";
    fs::create_directories(out);
    spit(out / "summary.md", "previous summary\n");
    spit(out / "experiment1_results.png", "\x89PNG previous figure");
    spit(out / "experiment1_results.gp", "previous script\n");
    const auto before = listing(out);

    write_results(known_phase("phase1", 40, 90), dir.path / "results_phase1.json");
    const std::string whole = to_json(known_phase("phase2", 35, 82)).dump(2);
    for (const std::string& bad : {std::string("{\"phase\": ]"), whole.substr(0, whole.size() - 40)}) {
        spit(dir.path / "results_phase2.json", bad);
        CHECK(contains(error_of([&] { write_reports(dir.path, out); }), "results_phase2.json"));
        CHECK(slurp(out / "summary.md") == "previous summary\n");
        CHECK(slurp(out / "experiment1_results.png") == "\x89PNG previous figure");
        CHECK(slurp(out / "experiment1_results.gp") == "previous script\n");
        CHECK(listing(out) == before);
    }
}

TEST_CASE("write_reports draws both figures beside their scripts and data", "[report][gnuplot]") {
    if (!gnuplot_or_skip()) return;
    TempDir dir;
    write_results(known_phase("phase1", 40, 90), dir.path / "results_phase1.json");
    write_results(known_phase("phase2", 35, 82), dir.path / "results_phase2.json");
    const fs::path out = dir.path / "reports";
    write_reports(dir.path, out);

    for (const char* name : {"experiment1_results", "experiment1_phase_comparison"}) {
        CHECK(slurp(out / (std::string(name) + ".png")).rfind("\x89PNG\r\n\x1a\n", 0) == 0);
        CHECK(fs::file_size(out / (std::string(name) + ".dat")) > 0);
        fs::remove(out / (std::string(name) + ".png"));
        // The script beside it re-draws it, by relative names, from that directory.
        CHECK(report_detail::run_process({"gnuplot", std::string(name) + ".gp"}, out).status == 0);
        CHECK(slurp(out / (std::string(name) + ".png")).rfind("\x89PNG\r\n\x1a\n", 0) == 0);
    }
    CHECK(contains(slurp(out / "summary.md"), "![experiment1_results](experiment1_results.png)"));
    CHECK(no_temporaries(out));
}

TEST_CASE("write_reports with only phase 2 draws phase 2", "[report][gnuplot]") {
    if (!gnuplot_or_skip()) return;
    TempDir dir;
    write_results(known_phase("phase2", 35, 82), dir.path / "results_phase2.json");
    write_reports(dir.path, dir.path);
    CHECK(slurp(dir.path / "experiment1_results.png").rfind("\x89PNG", 0) == 0);
    CHECK(slurp(dir.path / "experiment1_phase_comparison.png").rfind("\x89PNG", 0) == 0);
    CHECK(contains(slurp(dir.path / "experiment1_results.gp"), "layout 1,3"));
    const std::string md = slurp(dir.path / "summary.md");
    CHECK(contains(md, "## Phase 2"));
    CHECK_FALSE(contains(md, "## Phase 1"));
}

TEST_CASE("a run that stopped before measuring anything still gets its figures", "[report][gnuplot]") {
    PhaseResult stopped = known_phase("phase1", 40, 90);
    stopped.trials.resize(2);  // the warm-up trials only
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (ArmStats* s : {&stopped.hit_stats, &stopped.miss_stats}) {
        *s = ArmStats{};
        s->ttft_median = s->ttft_stdev = s->throughput_median = s->throughput_stdev = nan;
    }
    stopped.ttft_degradation_pct = nan;
    stopped.fault = Fault{FaultKind::connection_refused, FaultStage::connect, "Connection refused", 3, FaultRequest::warm};
    CHECK(contains(results_data(e1, {stopped}), "\n0 NaN NaN NaN NaN 0 0.000 0.000 0 \"\" 0 \"\"\n"));
    CHECK(contains(results_script(e1, {stopped}), "no measured trials"));
    // Three arms, stopped after the warm-ups: no statistics, no contrast, only the bar in the decision panel.
    PhaseResult stopped3 = with_cold(known_phase("phase2", 35, 82), 110);
    stopped3.trials.resize(3);
    for (Arm arm : all_arms) {
        ArmStats& s = stopped3.stats(arm);
        s = ArmStats{};
        s.ttft_median = s.ttft_stdev = s.throughput_median = s.throughput_stdev = nan;
    }
    stopped3.verdict = Verdict{};
    stopped3.verdict.threshold_pct = 10;
    stopped3.verdict.ratio = stopped3.verdict.ratio_low = stopped3.verdict.ratio_high = nan;
    stopped3.verdict.rounds_reason = "stopped early: the evidence decided";
    CHECK(contains(results_data(e1, {stopped3}), "\n2 NaN NaN NaN NaN 0 0.000 0.000 0 \"\" 0 \"\"\n"));
    CHECK_FALSE(contains(results_data(e1, {stopped3}), "[P2-cache]"));
    CHECK(contains(results_script(e1, {stopped3}), "set label 7 'no paired rounds' at first 1, graph 0.5 center"));
    CHECK_FALSE(contains(summary_markdown({stopped3}, {}), "nan"));
    if (!gnuplot_or_skip()) return;
    TempDir dir;
    write_results(stopped, dir.path / "results_phase1.json");
    write_results(stopped3, dir.path / "results_phase2.json");
    write_reports(dir.path, dir.path);
    CHECK(slurp(dir.path / "experiment1_results.png").rfind("\x89PNG", 0) == 0);
    CHECK(slurp(dir.path / "experiment1_phase_comparison.png").rfind("\x89PNG", 0) == 0);
}

TEST_CASE("a failing gnuplot leaves no half-drawn figure and reports gnuplot's words", "[report][gnuplot]") {
    if (!gnuplot_or_skip()) return;
    TempDir dir;
    spit(dir.path / "broken.png", "previous");
    const Figure broken{"broken", "0 1\n",
                        "set terminal pngcairo\nset output outfile\nplot datafile using 1:2 with nonsense\n"};
    std::string error = error_of([&] { render_figure(broken, dir.path); });
    CHECK(contains(error, "gnuplot failed to draw " + (dir.path / "broken.png").string()));
    CHECK(contains(error, "nonsense"));  // gnuplot's own message, pointing at the bad word
    CHECK(slurp(dir.path / "broken.png") == "previous");
    CHECK(listing(dir.path) == std::set<std::string>{"broken.png"});
}

TEST_CASE("clear_results removes an earlier run's results and reports, and nothing else", "[report]") {
    TempDir dir;
    for (const char* name : {"results_phase1.json", "results_phase2.json", "summary.md", "experiment1_results.png",
                             "experiment1_phase_comparison.dat", "notes.txt"})
        spit(dir.path / name, "old\n");
    const auto removed = clear_results(dir.path);
    CHECK(removed.size() == 5);
    CHECK(listing(dir.path) == std::set<std::string>{"notes.txt"});
    CHECK(clear_results(dir.path / "absent").empty());
    CHECK(contains(error_of([&] { write_all_reports(dir.path, dir.path); }), "results_phase1.json"));
}

TEST_CASE("the Markdown summary names the TTFT it gated and shows the other beside it", "[report]") {
    PhaseResult client_gated = known_phase("phase1", 40, 90);
    for (Trial& t : client_gated.trials) t.measured.engine_ttft_ms = t.ttft_ms - 3;
    const std::string client_md = summary_markdown({client_gated}, {});
    CHECK(contains(client_md, "| TTFT median (ms) | 40.0 | 90.0 |"));
    CHECK(contains(client_md, "| engine's own TTFT median (ms), not gated | 37.0 | 87.0 |"));

    PhaseResult engine_gated = client_gated;
    engine_gated.settings.gate.ttft = TtftSource::engine;
    const std::string engine_md = summary_markdown({engine_gated}, {});
    CHECK(contains(engine_md, "| engine's own TTFT median (ms) | 40.0 | 90.0 |"));
    CHECK(contains(engine_md, "| client TTFT median (ms), not gated | 40.0 | 90.0 |"));
    CHECK(contains(results_script(e1, {engine_gated}), report_detail::gp_quote("engine's own TTFT (ms)")));

    PhaseResult no_engine_time = known_phase("phase1", 40, 90);  // one trial in three reports it
    CHECK_FALSE(contains(summary_markdown({no_engine_time}, {}), "not gated"));
}

namespace {

// Phase 1's protocol through a router of two replicas: every query on its warm-up's replica.
PhaseResult fleet_phase(double hit_ms, double miss_ms) {
    PhaseResult r = known_phase("fleet_phase1", hit_ms, miss_ms);
    r.engine.replica_urls = {"http://127.0.0.1:8001", "http://127.0.0.1:8002"};
    r.engine.router_policy = "cache_aware";
    for (Trial& t : r.trials) {
        const int replica = t.index / 2 % 2;
        t.warm.placement = Placement{PlacementOutcome::served, replica, {replica}, 768, 0};
        t.measured.placement = Placement{PlacementOutcome::served, replica, {replica}, 800, t.arm == Arm::hit ? 768.0 : 0.0};
    }
    return r;
}

// A finished sweep of a few agreeing cells.
CurveResult small_sweep() {
    CurveResult r;
    r.phase = phase_descriptor("curve");
    r.settings.target.model = "facebook/opt-125m";
    r.timestamp = "2024-11-28T21:00:00Z";
    r.engine.name = "vllm";
    r.engine.version = "0.6.3.post1";
    r.engine.block_size = 16;
    for (int i = 0; i < 8; ++i) {
        CurveCell c;
        c.trial = i / 4;
        c.slot = i % 4;
        c.point = i % 4;
        c.context_tokens = 384;
        c.kind = i % 2 ? EditKind::remove : EditKind::none;
        c.warm_tokens = c.measured_tokens = 384;
        c.predicted_reuse = 352 - 64 * (i % 4);
        c.predicted_recompute = c.measured_tokens - c.predicted_reuse;
        c.reported_cached = c.predicted_reuse;
        c.reported_prompt = c.measured_tokens;
        c.ttft_ms = 8 + 0.05 * c.predicted_recompute + 0.3 * (i % 3);
        r.cells.push_back(c);
    }
    r.wall_time_s = 3;
    r.complete = true;
    return r;
}

// Where gnuplot would run a command: a backquote outside single quotes and outside a comment
// (gnuplot substitutes `...` on the command line and inside double quotes, never inside '...').
std::vector<std::string> live_backquotes(const std::string& script) {
    std::vector<std::string> lines;
    std::istringstream in(script);
    for (std::string line; std::getline(in, line);) {
        char quote = 0;
        for (std::size_t i = 0; i < line.size(); ++i) {
            const char c = line[i];
            if (quote == '\'') {
                if (c == '\'') quote = 0;
            } else if (c == '`') {
                lines.push_back(line);
                break;
            } else if (quote == '"') {
                if (c == '\\') ++i;
                else if (c == '"') quote = 0;
            } else if (c == '#') {
                break;
            } else if (c == '\'' || c == '"') {
                quote = c;
            }
        }
    }
    return lines;
}

}  // namespace

TEST_CASE("gp_quote makes any text a single-quoted gnuplot string", "[report]") {
    using report_detail::gp_quote;
    CHECK(gp_quote("plain") == "'plain'");
    CHECK(gp_quote("it's") == "'it'.\"\\047\".'s'");
    CHECK(gp_quote("`id` $(id) \"x\" \\ @m") == "'`id` $(id) \"x\" \\ @m'");
    CHECK(gp_quote("one\ntwo") == "'one'.\"\\n\".'two'");
    CHECK(gp_quote(std::string("a\rb\tc\0d", 7)) == "'a b c d'");
    // Tic labels are gnuplot formats: a % is doubled, the rest quoted alike.
    CHECK(report_detail::gp_tic("97.5% it's") == "'97.5%% it'.\"\\047\".'s'");
}

TEST_CASE("gnuplot reads gp_quote's strings back as the text and runs nothing", "[report][gnuplot]") {
    if (!gnuplot_or_skip()) return;
    TempDir dir;
    const std::string ran = (dir.path / "ran").string();
    // Quotes of either kind in runs and at the ends, backslashes before quotes, comments, macros.
    const std::vector<std::string> texts = {"`touch " + ran + "-1`",
                                            "$(touch " + ran + "-2)",
                                            "\"`touch " + ran + "-3`\"",
                                            "'",
                                            "''",
                                            "'''x'''",
                                            "a''''b",
                                            "x\\",
                                            "\\'",
                                            "a\"b\"@outfile",
                                            "@outfile",
                                            "'@outfile'",
                                            "\"'\"@outfile",
                                            "#`touch " + ran + "-4`",
                                            "\n'\n`touch " + ran + "-5`",
                                            "it's \"quoted\" \\n \u00b7 \u2014",
                                            ""};
    std::string script = "outfile = 'EXPANDED'\nset print '-'\n", expected;
    for (const auto& t : texts) {
        script += "print " + report_detail::gp_quote(t) + "\n";
        expected += t + "\n";
    }
    spit(dir.path / "quote.gp", script);
    const auto run = report_detail::run_process({"gnuplot", "quote.gp"}, dir.path);
    INFO(script);
    CHECK(run.status == 0);
    CHECK(run.output == expected);
    CHECK(listing(dir.path) == std::set<std::string>{"quote.gp"});
}

TEST_CASE("foreign text in results files runs no command through gnuplot", "[report][gnuplot]") {
    TempDir dir;
    // One marker file per way in: a field whose text gnuplot ran would create its file.
    auto hostile = [&](const std::string& field) {
        const std::string marker = (dir.path / ("ran-" + field)).string();
        return "x`touch " + marker + "-backquote` $(touch " + marker + "-dollar) 'it''s' \"q\" \\ @outfile\n" +
               "second line `touch " + marker + "-line2`";
    };
    PhaseResult phase1 = with_cold(known_phase("phase1", 40, 90), 124);
    phase1.engine.version = hostile("version");
    phase1.verdict.rounds_reason = hostile("rounds_reason");
    phase1.verdict.physics = hostile("physics");
    phase1.verdict.reason = hostile("reason");
    phase1.verdict.method = hostile("method");
    phase1.settings.target.model = hostile("model");
    phase1.git_revision = hostile("git_revision");
    phase1.engine.name = hostile("engine_name");
    BaselineRecord b;
    b.path = hostile("baseline_path");
    b.revision = hostile("baseline_revision");
    b.outcome = Outcome::pass;
    b.baseline_pair_ratios = {2.1, 2.3, 2.2};
    b.ratio_bar = 0.9;
    b.baseline_ratio = 2.2;
    phase1.baseline = b;
    PhaseResult fleet = fleet_phase(40, 90);
    fleet.engine.router_policy = hostile("router_policy");
    fleet.engine.version = hostile("fleet_version");
    CurveResult sweep = small_sweep();
    sweep.settings.target.model = hostile("curve_model");
    sweep.engine.version = hostile("curve_version");

    // The script text: every backquote sits inside a single-quoted string.
    const CurveFile curve = parse_curve_json(curve_result_json(sweep), "results_curve.json");
    const Experiment fleet_experiment = experiment("fleet");
    for (const Figure& f : {results_figure(e1, {phase1}), phase_comparison_figure(e1, {phase1}), baseline_figure(phase1),
                            placement_figure(fleet_experiment, {fleet}),
                            curve_figure(experiment("experiment2"), curve, analyse_curve(curve.cells, 0.95), phase1)}) {
        INFO(f.name << ".gp:\n" << f.script);
        CHECK(live_backquotes(f.script).empty());
    }
    CHECK(contains(results_script(e1, {phase1}), "x`touch " + (dir.path / "ran-version").string() + "-backquote`"));
    CHECK(contains(results_script(e1, {phase1}), (dir.path / "ran-rounds_reason").string() + "-backquote`"));
    CHECK(contains(results_script(e1, {phase1}), "index '[P1-cold]'"));

    // And gnuplot itself, on the results files as kvgate report reads them.
    if (!gnuplot_or_skip()) return;
    write_results(phase1, dir.path / "results_phase1.json");
    write_results(fleet, dir.path / "results_fleet_phase1.json");
    write_file_atomically(dir.path / "results_curve.json", curve_result_json(sweep).dump(2));
    const fs::path out = dir.path / "reports";
    CHECK(write_all_reports(dir.path, out).size() == 3);
    for (const char* png : {"experiment1_results.png", "experiment1_phase_comparison.png", "phase1_baseline.png",
                            "fleet_placement.png", "experiment2_invalidation_curve.png"})
        CHECK(slurp(out / png).rfind("\x89PNG", 0) == 0);
    // Re-drawing from the scripts beside the figures runs nothing either.
    for (const auto& name : listing(out))
        if (fs::path(name).extension() == ".gp") CHECK(report_detail::run_process({"gnuplot", name}, out).status == 0);
    for (const auto& name : listing(dir.path)) CHECK_FALSE(contains(name, "ran-"));
}

TEST_CASE("one summary.md covers every experiment in the directory, its outcome the worst", "[report][gnuplot]") {
    TempDir dir;
    PhaseResult failed = known_phase("phase1", 40, 42);
    failed.verdict.outcome = Outcome::fail;
    failed.verdict.reason = "the interval lies below the threshold";
    write_results(failed, dir.path / "results_phase1.json");
    write_results(fleet_phase(40, 90), dir.path / "results_fleet_phase1.json");
    if (gnuplot_or_skip()) {
        const auto reported = write_all_reports(dir.path, dir.path / "reports");
        CHECK(reported.size() == 2);
        const std::string md = slurp(dir.path / "reports" / "summary.md");
        CHECK(contains(md, "**FAIL** — the worst verdict of the 2 results in this directory"));
        CHECK(contains(md, "| Phase 1: HTTP streaming API | `results_phase1.json` | FAIL |"));
        CHECK(contains(md, "| Fleet: HTTP streaming API through a router | `results_fleet_phase1.json` | PASS |"));
        CHECK(contains(md, "## Phase 1: HTTP streaming API"));
        CHECK(contains(md, "**FAIL** — the interval lies below the threshold"));
        CHECK(contains(md, "## Fleet: HTTP streaming API through a router"));
        CHECK(contains(md, "![experiment1_results](experiment1_results.png)"));
        CHECK(contains(md, "![fleet_placement](fleet_placement.png)"));
        // verdicts.json renders the same model: the same outcomes, with the reason and the metrics.
        const auto verdicts = nlohmann::json::parse(slurp(dir.path / "reports" / "verdicts.json"));
        CHECK(verdicts.at("outcome") == "fail");
        REQUIRE(verdicts.at("results").size() == 2);
        const auto& first = verdicts.at("results").at(0);
        CHECK(first.at("experiment") == "experiment1");
        CHECK(first.at("results_file") == "results_phase1.json");
        CHECK(first.at("outcome") == "fail");
        CHECK(first.at("reason") == "the interval lies below the threshold");
        CHECK(first.at("metrics").at(0).at("name") == "cold/hit TTFT ratio");
        CHECK(verdicts.at("results").at(1).at("outcome") == "pass");
    }
    // One experiment's report would drop the other's verdict from the directory's summary.
    CHECK(contains(error_of([&] { write_reports(dir.path, dir.path, experiment("fleet")); }),
                   "holds results of 'Prefix-cache invalidation cost' (results_phase1.json"));
}

TEST_CASE("the overall outcome is the worst result's", "[report]") {
    auto line = [](Outcome o) { return ResultLine{"t", "f.json", o, true, "", "", {}}; };
    CHECK(overall_outcome({line(Outcome::pass), line(Outcome::pass)}) == Outcome::pass);
    CHECK(overall_outcome({line(Outcome::pass), line(Outcome::indeterminate)}) == Outcome::indeterminate);
    CHECK(overall_outcome({line(Outcome::unverified), line(Outcome::indeterminate)}) == Outcome::unverified);
    CHECK(overall_outcome({line(Outcome::fail), line(Outcome::unverified), line(Outcome::pass)}) == Outcome::fail);
    CHECK(overall_outcome({line(Outcome::fail), line(Outcome::error)}) == Outcome::error);
    CHECK(contains(overview_markdown({ResultLine{"Phase 1", "results_phase1.json", Outcome::error, false, "", "", {}}}),
                   "| Phase 1 | `results_phase1.json` | ERROR (incomplete run) |"));
}

namespace {

// Puts a gnuplot first on PATH that fails for the figures whose script name holds `failing` and
// hands every other call to the real one; the old PATH comes back with the object.
struct FailingGnuplot {
    std::string old_path;
    FailingGnuplot(const fs::path& bin, const std::string& failing) : old_path(std::getenv("PATH")) {
        fs::create_directories(bin);
        spit(bin / "gnuplot", "#!/bin/sh\ncase \"$*\" in *" + failing +
                                  "*) echo 'simulated gnuplot failure' >&2; exit 1;; esac\n"
                                  "PATH=${PATH#*:} exec gnuplot \"$@\"\n");
        fs::permissions(bin / "gnuplot", fs::perms::owner_all);
        ::setenv("PATH", (bin.string() + ":" + old_path).c_str(), 1);
    }
    ~FailingGnuplot() { ::setenv("PATH", old_path.c_str(), 1); }
};

}  // namespace

TEST_CASE("a failure in any experiment's report replaces none of the outputs", "[report][gnuplot]") {
    if (!gnuplot_or_skip()) return;
    TempDir dir;
    const fs::path in = dir.path / "in", out = dir.path / "out";
    fs::create_directories(in);
    fs::create_directories(out);
    spit(out / "summary.md", "previous summary\n");
    spit(out / "experiment1_results.png", "\x89PNG previous figure");
    spit(out / "experiment1_results.gp", "previous script\n");
    const auto before = listing(out);
    write_results(known_phase("phase1", 40, 90), in / "results_phase1.json");
    auto unchanged = [&] {
        CHECK(slurp(out / "summary.md") == "previous summary\n");
        CHECK(slurp(out / "experiment1_results.png") == "\x89PNG previous figure");
        CHECK(slurp(out / "experiment1_results.gp") == "previous script\n");
        CHECK(listing(out) == before);
    };

    SECTION("a later experiment's results file is malformed") {
        spit(in / "results_fleet_phase1.json", "{\"phase\": ]");
        CHECK(contains(error_of([&] { write_all_reports(in, out); }), "results_fleet_phase1.json"));
        unchanged();
    }
    SECTION("gnuplot fails on a later experiment's figure") {
        write_results(fleet_phase(40, 90), in / "results_fleet_phase1.json");
        const FailingGnuplot failing(dir.path / "bin", "fleet_placement");
        const std::string error = error_of([&] { write_all_reports(in, out); });
        CHECK(contains(error, "gnuplot failed to draw " + (out / "fleet_placement.png").string()));
        CHECK(contains(error, "simulated gnuplot failure"));
        unchanged();
    }
}

TEST_CASE("every kind of experiment has a reporter, and every format's files are cleared", "[report]") {
    for (const auto& e : experiments()) {
        CHECK_NOTHROW(experiment_reporter(e.kind));
        const auto names = report_file_names(e);
        for (const auto& reporter : reporters())
            for (const auto& file : reporter.files)
                CHECK(std::find(names.begin(), names.end(), file) != names.end());
    }
    CHECK(reporters().size() == 3);
}

TEST_CASE("verdicts.json: one line per results file, NaN metrics as null, the worst outcome overall", "[report]") {
    ExperimentReport a{"experiment1", {}, "", {}};
    a.results.push_back({"P1", "results_phase1.json", Outcome::pass, true, "ok", "", {{"ratio", 2.5, 2.0, 3.0, ""}}});
    ExperimentReport b{"experiment2", {}, "", {}};
    b.results.push_back({"C", "results_curve.json", Outcome::indeterminate, true, "may be zero", "more trials",
                         {{"cost", 0.2, NAN, NAN, "ms"}}});
    const auto j = report_detail::verdicts_json({a, b});
    CHECK(j.at("schema_version") == 1);
    CHECK(j.at("outcome") == "indeterminate");
    CHECK(j.at("results").at(0).at("metrics").at(0).at("low") == 2.0);
    CHECK(j.at("results").at(1).at("metrics").at(0).at("low").is_null());
    CHECK(j.at("results").at(1).at("fix") == "more trials");
}
