#include <catch2/catch.hpp>

#include <cstdlib>
#include <set>
#include <sstream>

#include "kvgate/settings.hpp"

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
    CHECK(s.context_a_tokens == 512);
    CHECK(s.context_b_tokens == 256);
    CHECK(s.max_output_tokens == 50);
    CHECK(s.trials == 10);
    CHECK(s.warmup == 1);
    CHECK(s.settle_ms == 500);
    CHECK(s.threshold_pct == 10);
}

TEST_CASE("flags override, in both spellings", "[settings]") {
    Settings s;
    const auto rest = apply_flags(s, {"--trials", "7", "--threshold-pct=25.5", "--url", "http://h:1", "extra"});
    CHECK(s.trials == 7);
    CHECK(s.threshold_pct == 25.5);
    CHECK(s.url == "http://h:1");
    CHECK(rest == std::vector<std::string>{"extra"});
}

TEST_CASE("environment variables set values", "[settings]") {
    setenv("KVGATE_WARMUP", "3", 1);
    setenv("KVGATE_ENDPOINT", "completions", 1);
    const Settings s = settings_from_env();
    unsetenv("KVGATE_WARMUP");
    unsetenv("KVGATE_ENDPOINT");
    CHECK(s.warmup == 3);
    CHECK(s.endpoint == "completions");
}

TEST_CASE("bad values name the knob and what is allowed", "[settings]") {
    Settings s;
    CHECK_THROWS_WITH(apply_flags(s, {"--trials", "ten"}), Catch::Contains("KVGATE_TRIALS") && Catch::Contains("ten"));
    CHECK_THROWS_WITH(apply_flags(s, {"--trials", "1"}), Catch::Contains("[2, 10000]"));
    CHECK_THROWS_WITH(apply_flags(s, {"--confidence", "2"}), Catch::Contains("KVGATE_CONFIDENCE"));
    CHECK_THROWS_WITH(apply_flags(s, {"--endpoint", "grpc"}), Catch::Contains("chat"));
    CHECK_THROWS_WITH(apply_flags(s, {"--url", "localhost:8000"}), Catch::Contains("http://"));
    CHECK_THROWS_WITH(apply_flags(s, {"--seed"}), Catch::Contains("needs a value"));
}
