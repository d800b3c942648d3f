#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "kvgate/model/settings.hpp"

using namespace kvgate;

TEST_CASE("every setting has one name for CMake and the environment, and one flag", "[settings]") {
    std::set<std::string> keys, flags;
    for (const auto& spec : setting_table()) {
        CHECK(spec.key.rfind("KVGATE_", 0) == 0);
        CHECK(spec.flag.rfind("--", 0) == 0);
        CHECK_FALSE(spec.help.empty());
        keys.insert(spec.key);
        flags.insert(spec.flag);
    }
    CHECK(keys.size() == setting_table().size());
    CHECK(flags.size() == setting_table().size());

    // cmake/kvgateSettings.cmake lists the same names as cache variables.
    std::set<std::string> cmake_names;
    std::stringstream list(KVGATE_SETTINGS_CMAKE_LIST);
    for (std::string name; std::getline(list, name, ',');) cmake_names.insert(name);
    CHECK(cmake_names == keys);
}

TEST_CASE("defaults are the seed's", "[settings]") {
    const Settings s;
    CHECK(s.hit_miss.context_a_tokens == 512);
    CHECK(s.hit_miss.context_b_tokens == 256);
    CHECK(s.hit_miss.max_output_tokens == 50);
    CHECK(s.hit_miss.trials == 10);
    CHECK(s.hit_miss.warmup == 1);
    CHECK(s.hit_miss.settle_ms == 500);
    CHECK(s.gate.threshold_pct == 10);
    CHECK(threshold_ratio(s.gate.threshold_pct) == Approx(1.1));
}

TEST_CASE("docs/settings.md's settings table is the one `kvgate settings` prints", "[settings]") {
    std::ifstream in(std::string(KVGATE_SOURCE_DIR) + "/docs/settings.md");
    REQUIRE(in);
    std::string table;
    bool inside = false;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("| CMake / environment variable |", 0) == 0) inside = true;
        if (inside && line.empty()) break;
        if (inside) table += line + "\n";
    }
    INFO("regenerate the table in docs/settings.md with: build/default/tools/kvgate settings");
    CHECK(table == settings_markdown());
}

TEST_CASE("flags override, in both spellings", "[settings]") {
    Settings s;
    const auto rest = apply_flags(s, {"--trials", "7", "--threshold-pct=25.5", "--url", "http://h:1", "extra"});
    CHECK(s.hit_miss.trials == 7);
    CHECK(s.gate.threshold_pct == 25.5);
    CHECK(s.target.url == "http://h:1");
    CHECK(rest == std::vector<std::string>{"extra"});

    apply_flags(s, {"--venv=/v", "--dtype", "bfloat16", "--engine=vllm_python", "--out", "o"});
    CHECK(s.python.venv == "/v");
    CHECK(s.python.dtype == "bfloat16");
    CHECK(s.engine == EngineKind::vllm_python);
    CHECK(s.out == "o");
}

TEST_CASE("switches: alone, negated, or with a value", "[settings]") {
    Settings s;
    CHECK_FALSE(s.python.dummy_weights);
    CHECK(s.prefix_caching);
    CHECK(apply_flags(s, {"--dummy-weights", "--no-prefix-caching", "next"}) == std::vector<std::string>{"next"});
    CHECK(s.python.dummy_weights);
    CHECK_FALSE(s.prefix_caching);
    apply_flags(s, {"--dummy-weights=OFF", "--prefix-caching=1"});
    CHECK_FALSE(s.python.dummy_weights);
    CHECK(s.prefix_caching);
    CHECK_THROWS_WITH(apply_flags(s, {"--dummy-weights=maybe"}), Catch::Contains("KVGATE_DUMMY_WEIGHTS"));
    CHECK_THROWS_WITH(apply_flags(s, {"--no-prefix-caching=1"}), Catch::Contains("takes no value"));
}

TEST_CASE("the seed takes any 64-bit value, so a recorded seed can be replayed", "[settings]") {
    Settings s;
    apply_flags(s, {"--seed", "18446744073709551615"});
    CHECK(s.seed == 18446744073709551615ULL);
    apply_flags(s, {"--seed=9223372036854775808"});
    CHECK(s.seed == 9223372036854775808ULL);
    CHECK_THROWS_WITH(apply_flags(s, {"--seed", "18446744073709551616"}), Catch::Contains("KVGATE_SEED"));
    CHECK_THROWS_WITH(apply_flags(s, {"--seed", "-1"}), Catch::Contains("KVGATE_SEED"));
    CHECK_THROWS_WITH(apply_flags(s, {"--seed", "12x"}), Catch::Contains("KVGATE_SEED"));
}

TEST_CASE("a server URL is a root: a trailing slash is dropped, a path is refused with the fix", "[settings]") {
    Settings s;
    apply_flags(s, {"--url", "http://h:8000/"});
    CHECK(s.target.url == "http://h:8000");
    CHECK_THROWS_WITH(apply_flags(s, {"--url", "http://h:8000/v1"}),
                      Catch::Contains("has a path ('/v1')") && Catch::Contains("'http://h:8000'"));
    CHECK_THROWS_WITH(apply_flags(s, {"--url", "http://"}), Catch::Contains("no host"));
    setenv("KVGATE_URL", "https://h/x/", 1);
    CHECK_THROWS_WITH(settings_from_env(), Catch::Contains("KVGATE_URL") && Catch::Contains("path"));
    unsetenv("KVGATE_URL");
}

TEST_CASE("environment variables set values", "[settings]") {
    setenv("KVGATE_WARMUP", "3", 1);
    setenv("KVGATE_ENDPOINT", "completions", 1);
    const Settings s = settings_from_env();
    unsetenv("KVGATE_WARMUP");
    unsetenv("KVGATE_ENDPOINT");
    CHECK(s.hit_miss.warmup == 3);
    CHECK(s.target.endpoint == Endpoint::completions);
}

TEST_CASE("bad values name the knob and what is allowed", "[settings]") {
    Settings s;
    CHECK_THROWS_WITH(apply_flags(s, {"--trials", "ten"}), Catch::Contains("KVGATE_TRIALS") && Catch::Contains("ten"));
    CHECK_THROWS_WITH(apply_flags(s, {"--trials", "1"}), Catch::Contains("[2, 10000]"));
    CHECK_THROWS_WITH(apply_flags(s, {"--confidence", "2"}), Catch::Contains("KVGATE_CONFIDENCE"));
    CHECK_THROWS_WITH(apply_flags(s, {"--endpoint", "grpc"}), Catch::Contains("chat"));
    CHECK_THROWS_WITH(apply_flags(s, {"--url", "localhost:8000"}), Catch::Contains("http://"));
    CHECK_THROWS_WITH(apply_flags(s, {"--seed"}), Catch::Contains("needs a value"));
    CHECK_THROWS_WITH(apply_flags(s, {"--engine", "python"}), Catch::Contains("vllm_http, vllm_python"));
}

TEST_CASE("KVGATE_FLEET_REPLICA_URLS: a comma-separated list of server roots, each checked", "[settings][fleet]") {
    CHECK(split_url_list("http://a:1,http://b:2/") == std::vector<std::string>{"http://a:1", "http://b:2"});
    CHECK(split_url_list("").empty());
    CHECK_THROWS_WITH(split_url_list("http://a:1,,http://b:2"), Catch::Contains("empty entry"));
    CHECK_THROWS_WITH(split_url_list("http://a:1,http://b:2/metrics"),
                      Catch::StartsWith("KVGATE_FLEET_REPLICA_URLS: entry 2: 'http://b:2/metrics' has a path"));
    Settings s;
    CHECK_THROWS_WITH(apply_flags(s, {"--fleet-replica-urls", "a:1"}), Catch::Contains("must start with http://"));
}

TEST_CASE("the TTFT compared is the client's unless the engine's own is asked for", "[settings]") {
    Settings s;
    CHECK(s.gate.ttft == TtftSource::client);
    apply_flags(s, {"--ttft", "engine"});
    CHECK(s.gate.ttft == TtftSource::engine);
    CHECK_THROWS_WITH(apply_flags(s, {"--ttft", "server"}),
                      Catch::Contains("KVGATE_TTFT") && Catch::Contains("is not one of: client, engine"));
}

TEST_CASE("a whole request's deadline is four read timeouts unless set", "[settings]") {
    Settings s;
    CHECK(s.target.request_timeout_s == 0);
    CHECK(request_deadline_s(s.target) == 480);
    s.target.read_timeout_s = 3;
    CHECK(request_deadline_s(s.target) == 12);
    apply_flags(s, {"--request-timeout-s", "30"});
    CHECK(request_deadline_s(s.target) == 30);
    CHECK_THROWS_WITH(apply_flags(s, {"--request-timeout-s", "-1"}), Catch::Contains("KVGATE_REQUEST_TIMEOUT_S"));
}
