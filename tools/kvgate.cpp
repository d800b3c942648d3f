// kvgate's command line, for use outside CTest.
//   kvgate measure --url URL --model NAME [--out FILE] [settings...]   phase 1 against a server
//   kvgate measure --engine python --model PATH [--venv DIR] [--dummy-weights] ...   phase 2
//   kvgate report --in DIR --out DIR                                    figures + summary.md
//   kvgate settings                                                     the settings table (Markdown)
// Exit status of measure: 0 pass, 1 fail, 2 indeterminate or unverified, 3 error.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "kvgate.hpp"

namespace {

constexpr int kExitError = 3;

int exit_code(kvgate::Outcome o) {
    switch (o) {
        case kvgate::Outcome::pass: return 0;
        case kvgate::Outcome::fail: return 1;
        case kvgate::Outcome::indeterminate:
        case kvgate::Outcome::unverified: return 2;
        case kvgate::Outcome::error: return kExitError;
    }
    return kExitError;
}

const char* kUsage =
    "usage:\n"
    "  kvgate measure --url URL --model NAME [--out FILE] [settings...]\n"
    "  kvgate measure --engine python --model PATH [--venv DIR] [--dummy-weights] [--no-prefix-caching]\n"
    "                 [--dtype T] [--out FILE] [settings...]\n"
    "  kvgate report --in DIR --out DIR\n"
    "  kvgate settings\n"
    "Every setting (kvgate settings) is also an environment variable and a CMake cache variable.\n";

// Takes `--name value` out of args; empty when absent.
std::string take_option(std::vector<std::string>& args, const std::string& name) {
    for (std::size_t i = 0; i < args.size(); ++i)
        if (args[i] == name) {
            if (i + 1 >= args.size()) throw std::invalid_argument(name + " needs a value");
            std::string value = args[i + 1];
            args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
            return value;
        }
    return {};
}

bool take_switch(std::vector<std::string>& args, const std::string& name) {
    for (std::size_t i = 0; i < args.size(); ++i)
        if (args[i] == name) {
            args.erase(args.begin() + static_cast<long>(i));
            return true;
        }
    return false;
}

int measure(std::vector<std::string> args) {
    kvgate::Settings s = kvgate::settings_from_env();
    const std::string engine_kind = take_option(args, "--engine");
    kvgate::PythonEngineOptions py;
    py.venv = take_option(args, "--venv");
    py.dtype = take_option(args, "--dtype");
    py.dummy_weights = take_switch(args, "--dummy-weights");
    py.prefix_caching = !take_switch(args, "--no-prefix-caching");
    s.out = "results.json";
    const auto rest = kvgate::apply_flags(s, args);
    if (!rest.empty()) throw std::invalid_argument("unknown argument '" + rest.front() + "'\n" + kUsage);

    std::unique_ptr<kvgate::Engine> engine;
    std::string phase;
    if (engine_kind.empty() || engine_kind == "http") {
        if (s.url.empty()) throw std::invalid_argument("--url is required (or KVGATE_URL)");
        engine = std::make_unique<kvgate::HttpEngine>(s);
        phase = "phase1_http_api";
    } else if (engine_kind == "python") {
        if (py.venv.empty()) py.venv = std::getenv("KVGATE_VENV") ? std::getenv("KVGATE_VENV") : ".venv";
        py.model = s.model;
        s.max_output_tokens = 1;  // phase 2's TTFT is a 1-token generation
        engine = std::make_unique<kvgate::PythonEngine>(py);
        phase = "phase2_python_api";
    } else {
        throw std::invalid_argument("--engine must be http or python, not '" + engine_kind + "'");
    }

    const std::filesystem::path out = s.out;
    if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
    auto result = kvgate::run_phase(*engine, s, phase, [&](const kvgate::PhaseResult& partial, const kvgate::Trial& t) {
        std::cerr << kvgate::progress_line(partial, t) << std::endl;
        kvgate::write_results(partial, out);
    });
    kvgate::write_results(result, out);
    const auto& v = result.verdict;
    std::cout << kvgate::to_string(v.outcome) << ": " << v.reason << "\n";
    if (!v.fix.empty()) std::cout << "fix: " << v.fix << "\n";
    std::cout << "results: " << out.string() << "\n";
    return exit_code(v.outcome);
}

int report(std::vector<std::string> args) {
    const std::string in = take_option(args, "--in");
    const std::string out = take_option(args, "--out");
    if (in.empty() || out.empty() || !args.empty()) throw std::invalid_argument(kUsage);
    kvgate::write_reports(in, out);
    std::cout << "reports: " << out << "/{experiment1_results.png, experiment1_phase_comparison.png, summary.md}\n";
    return 0;
}

int settings_table() {
    const kvgate::Settings defaults;
    std::cout << "| CMake / environment variable | CLI flag | default | meaning |\n|---|---|---|---|\n";
    for (const auto& spec : kvgate::setting_table())
        std::cout << "| `" << spec.key << "` | `" << spec.flag << "` | `" << spec.get(defaults) << "` | " << spec.help
                  << " |\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) {
        std::cerr << kUsage;
        return kExitError;
    }
    const std::string command = args.front();
    args.erase(args.begin());
    try {
        if (command == "measure") return measure(args);
        if (command == "report") return report(args);
        if (command == "settings") return settings_table();
        std::cerr << "unknown command '" << command << "'\n" << kUsage;
    } catch (const std::exception& e) {
        std::cerr << "kvgate " << command << ": " << e.what() << "\n";
    }
    return kExitError;
}
