// The gpu tests' choice of engine (tests/fixture_env.hpp): the negative control's local no-cache
// engine must be asked for the model it serves, even where KVGATE_URL and KVGATE_MODEL name
// another server (issue 10: it was asked for the other server's name and answered 404).
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "fixture_env.hpp"

using namespace kvgate;

TEST_CASE("a fixture's engine wins over KVGATE_URL and KVGATE_MODEL", "[fixture_env]") {
    Settings user;
    user.target.url = "http://gpu-box:8000";
    user.target.model = "served-name";
    const auto path = std::filesystem::temp_directory_path() / "kvgate-fixture-env-test.env";
    {
        std::ofstream out(path);
        // engine.sh writes printf %q values: a backslash escapes the next character
        out << "KVGATE_URL=http://127.0.0.1:41234/\n"
            << "KVGATE_MODEL=models/opt-125m\\ dummy\n"
            << "KVGATE_PORT=41234\n";
    }
    const auto env = testing::read_engine_env_file(path.string());
    std::filesystem::remove(path);
    const Settings s = testing::with_fixture_engine(user, env);
    CHECK(s.target.url == "http://127.0.0.1:41234");  // a root URL, trailing slash dropped
    CHECK(s.target.model == "models/opt-125m dummy");
}

TEST_CASE("without a fixture's engine the user's server and model stay", "[fixture_env]") {
    Settings user;
    user.target.url = "http://gpu-box:8000";
    user.target.model = "served-name";
    const Settings s = testing::with_fixture_engine(user, testing::read_engine_env_file("/nonexistent/engine.env"));
    CHECK(s.target.url == "http://gpu-box:8000");
    CHECK(s.target.model == "served-name");
    CHECK(testing::with_fixture_engine(user, {{"KVGATE_URL", ""}, {"KVGATE_MODEL", ""}}).target.model == "served-name");
}
