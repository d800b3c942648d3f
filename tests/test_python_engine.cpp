// The environment checks that turn a wrong venv into a message instead of a crash. They run before
// any interpreter starts, so they are unit tests.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "kvgate/python/python_engine.hpp"

using namespace kvgate;
namespace fs = std::filesystem;

namespace {

fs::path fake_venv(const std::string& name, const std::string& version, bool with_vllm) {
    const fs::path venv = fs::temp_directory_path() / ("kvgate-test-venv-" + name);
    fs::remove_all(venv);
    const fs::path site = venv / "lib" / ("python" + std::to_string(PY_MAJOR_VERSION) + "." +
                                          std::to_string(PY_MINOR_VERSION)) / "site-packages";
    fs::create_directories(site);
    if (with_vllm) fs::create_directories(site / "vllm");
    std::ofstream(venv / "pyvenv.cfg") << "home = /somewhere/bin\ninclude-system-site-packages = false\n"
                                       << "version = " << version << "\n";
    return venv;
}

}  // namespace

TEST_CASE("a venv made by the embedded Python with vLLM in it is accepted", "[python]") {
    CHECK_FALSE(python_environment_problem(fake_venv("good", PY_VERSION, true).string()));
}

TEST_CASE("a venv made by another Python is refused with what to do", "[python]") {
    const auto problem = python_environment_problem(fake_venv("other", "3.11.7-other", true).string());
    REQUIRE(problem);
    CHECK_THAT(*problem, Catch::Contains("3.11.7-other") && Catch::Contains(PY_VERSION) &&
                             Catch::Contains("cmake/setup.sh"));
}

TEST_CASE("a venv without vLLM, or no venv at all, is refused with what to do", "[python]") {
    const auto no_vllm = python_environment_problem(fake_venv("novllm", PY_VERSION, false).string());
    REQUIRE(no_vllm);
    CHECK_THAT(*no_vllm, Catch::Contains("vLLM is not installed"));
    const auto missing = python_environment_problem("/nonexistent/kvgate-venv");
    REQUIRE(missing);
    CHECK_THAT(*missing, Catch::Contains("not a Python virtual environment"));
    CHECK(python_environment_problem(""));
}

TEST_CASE("the in-process engine's context: KVGATE_MAX_MODEL_LEN, else 1024 on a CPU, else the model's", "[python]") {
    CHECK(max_model_len_for(false, nullptr) == 1024);
    CHECK(max_model_len_for(false, "") == 1024);
    CHECK_FALSE(max_model_len_for(true, nullptr));  // a GPU: vLLM takes the model's own (8192 for the 8B shape)
    CHECK(max_model_len_for(true, "8192") == 8192);
    CHECK(max_model_len_for(false, "4096") == 4096);
    CHECK_THROWS_WITH(max_model_len_for(true, "8k"), Catch::Contains("not a positive whole number"));
    CHECK_THROWS_WITH(max_model_len_for(true, "0"), Catch::Contains("not a positive whole number"));
    CHECK_THROWS_WITH(max_model_len_for(true, "-5"), Catch::Contains("not a positive whole number"));
}

TEST_CASE("a venv that sees the system's site-packages (a GPU image's torch) is accepted", "[python]") {
    const fs::path venv = fake_venv("system-site", PY_VERSION, true);
    std::ofstream(venv / "pyvenv.cfg") << "home = /usr/bin\ninclude-system-site-packages = true\n"
                                       << "version = " << PY_VERSION << "\n";
    CHECK_FALSE(python_environment_problem(venv.string()));
}
