// kvgate's command line, for use outside CTest. Every setting (kvgate settings) is also an
// environment variable and a CMake cache variable; flags take `--flag value` or `--flag=value`.
//   kvgate run EXPERIMENT|PHASE [settings...]   one phase of an experiment (experiment_runners.hpp), into
//                                      KVGATE_OUT: the phase named, the experiment's only one, or the one
//                                      on the engine KVGATE_ENGINE names
//   kvgate measure [settings...]       run, for the phase of the engine KVGATE_ENGINE names
//   kvgate curve [settings...]         run experiment2: the sweep on a chat server
//   kvgate report [--in DIR] [--out DIR]   every experiment's figures + one summary.md from the results in DIR
//   kvgate compare BASELINE CURRENT    the baseline gate on two results files (figure + Markdown into KVGATE_OUT);
//                                      decides with CURRENT's own verdict, refuses a partial BASELINE
//   kvgate clear [--out DIR]           removes every experiment's results and reports from DIR
//   kvgate settings                    the settings table (Markdown)
// Exit status of run, measure, curve and compare (run_record.hpp's exit_code): 0 pass, 1 fail,
// 2 indeterminate or unverified, 3 error.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "kvgate.hpp"

namespace {

constexpr int kExitError = 3;

std::vector<std::string> with_front(const std::string& first, std::vector<std::string> rest) {
    rest.insert(rest.begin(), first);
    return rest;
}

const std::string kUsage =
    "usage:\n"
    "  kvgate run EXPERIMENT|PHASE [settings...]   (experiments: " + kvgate::experiment_list() + ")\n"
    "  kvgate measure --url URL --model NAME [settings...]                  (engine vllm_http)\n"
    "  kvgate measure --engine vllm_python --model PATH [--dummy-weights] [--no-prefix-caching] [settings...]\n"
    "  kvgate curve --url URL --model NAME [--curve-contexts 384,576] [--curve-positions ...] [settings...]\n"
    "  kvgate report [--in DIR] [--out DIR]     (both default to KVGATE_OUT)\n"
    "  kvgate compare BASELINE CURRENT [--regression-pct P] [--baseline-comparable] [--out DIR]\n"
    "                                           (two results files: did the saving shrink?)\n"
    "  kvgate clear [--out DIR]                 (removes every experiment's results and reports)\n"
    "  kvgate settings\n"
    "Results go to <KVGATE_OUT>/<the phase's results file>. Every setting (kvgate settings) is also an\n"
    "environment variable and a CMake cache variable; flags take `--flag value` or `--flag=value`.\n";

// Settings from the environment, then the flags; anything left over is returned.
std::vector<std::string> load(kvgate::Settings& s, const std::vector<std::string>& args) {
    s = kvgate::settings_from_env();
    return kvgate::apply_flags(s, args);
}

void no_more(const std::vector<std::string>& rest) {
    if (!rest.empty()) throw std::invalid_argument("unknown argument '" + rest.front() + "'\n" + kUsage);
}

// Runs one phase through its experiment's runner (the loop the gpu tests share): progress on stderr,
// the results file checkpointed after every step, the headline on stdout, its outcome the exit status.
int run_phase_named(const kvgate::PhaseDescriptor& phase, kvgate::Settings s) {
    s.engine = phase.engine;
    const auto engine = kvgate::make_engine(s);
    const auto headline = kvgate::run_experiment_phase(*engine, s, phase, std::cerr);
    std::cout << kvgate::headline_text(headline, kvgate::results_path(s.out, phase));
    return kvgate::exit_code(headline.outcome);
}

int run(const std::vector<std::string>& args) {
    if (args.empty() || args.front().rfind("--", 0) == 0)
        throw std::invalid_argument("run takes an experiment (" + kvgate::experiment_list() + ") or a phase\n" + kUsage);
    kvgate::Settings s;
    no_more(load(s, {args.begin() + 1, args.end()}));
    // By value: the reference phase_to_run returns outlives this call, but GCC 13 cannot tell (-Wdangling-reference).
    const kvgate::PhaseDescriptor phase = kvgate::phase_to_run(args.front(), s.engine);
    return run_phase_named(phase, std::move(s));
}

// `kvgate run` for the phase the engine kind runs (KVGATE_ENGINE), as before the verb existed.
int measure(const std::vector<std::string>& args) {
    kvgate::Settings s;
    no_more(load(s, args));
    const kvgate::PhaseDescriptor phase = kvgate::phase_for_engine(s.engine);
    return run_phase_named(phase, std::move(s));
}

int compare(const std::vector<std::string>& args) {
    kvgate::Settings s;
    const std::vector<std::string> files = load(s, args);
    if (files.size() != 2 || files[0].rfind("--", 0) == 0 || files[1].rfind("--", 0) == 0)
        throw std::invalid_argument("compare takes two results files, BASELINE then CURRENT\n" + kUsage);
    kvgate::LoadedBaseline baseline{files[0], kvgate::read_results_file(files[0])};
    kvgate::require_finished_baseline(baseline, "BASELINE");
    kvgate::PhaseResult current = kvgate::read_results_file(files[1]);
    if (baseline.result.phase != current.phase)
        throw std::invalid_argument("'" + files[0] + "' holds phase '" + baseline.result.phase.name + "' but '" +
                                    files[1] + "' holds '" + current.phase.name + "'");
    const auto differences = kvgate::check_baseline(baseline, current, s.baseline.comparable);
    current.baseline = kvgate::compare_runs(baseline, current, s.baseline.regression_pct, differences);
    current.verdict = kvgate::compare_verdict(current, *current.baseline);
    const auto& v = current.verdict;
    std::cout << kvgate::to_string(v.outcome) << ": " << v.reason << "\n";
    if (!v.fix.empty()) std::cout << "fix: " << v.fix << "\n";
    for (const auto& d : differences) std::cout << "declared comparable despite: " << d << "\n";
    const std::filesystem::path out(s.out);
    std::filesystem::create_directories(out);
    const auto figure = kvgate::baseline_figure(current);
    std::string image = figure.name + ".png";
    try {
        kvgate::render_figure(figure, out);
    } catch (const kvgate::ReportError& e) {  // the verdict stands without its figure
        std::cerr << "kvgate compare: no figure: " << e.what() << "\n";
        image.clear();
    }
    const auto md = out / (figure.name + ".md");
    std::ofstream(md) << kvgate::baseline_markdown(current, image);
    std::cout << "report: " << md.string() << (image.empty() ? "" : " and " + (out / image).string()) << "\n";
    return kvgate::exit_code(v.outcome);
}

int report(const std::vector<std::string>& args) {
    kvgate::Settings s;
    std::vector<std::string> rest = load(s, args);
    std::string in = s.out;  // --in DIR or --in=DIR; the one option that is not a setting
    for (std::size_t i = 0; i < rest.size(); ++i) {
        const bool spaced = rest[i] == "--in" && i + 1 < rest.size();
        if (!spaced && rest[i].rfind("--in=", 0) != 0) continue;
        in = spaced ? rest[i + 1] : rest[i].substr(5);
        rest.erase(rest.begin() + static_cast<long>(i), rest.begin() + static_cast<long>(i + (spaced ? 2 : 1)));
        break;
    }
    no_more(rest);
    const auto reported = kvgate::write_all_reports(in, s.out);
    std::set<std::string> listed;  // summary.md is every experiment's
    std::cout << "reports in " << s.out << ":";
    for (const kvgate::Experiment* experiment : reported)
        for (const auto& name : kvgate::report_file_names(*experiment)) {
            const auto ext = std::filesystem::path(name).extension();
            // Baseline figures exist only for phases that ran against a baseline.
            if ((ext == ".png" || ext == ".md" || ext == ".json") && std::filesystem::exists(std::filesystem::path(s.out) / name) &&
                listed.insert(name).second)
                std::cout << " " << name;
        }
    std::cout << "\n";
    return 0;
}

int clear(const std::vector<std::string>& args) {
    kvgate::Settings s;
    no_more(load(s, args));
    // A baseline inside the directory this run clears (and then writes its own results into) would be
    // gone, or replaced, before the gates compare with it.
    if (!s.baseline.path.empty()) {
        const auto out = std::filesystem::weakly_canonical(s.out).string() + "/";
        const auto baseline = std::filesystem::weakly_canonical(s.baseline.path).string() + "/";
        if (baseline.rfind(out, 0) == 0) {
            std::cerr << "kvgate clear: KVGATE_BASELINE=" << s.baseline.path << " is inside KVGATE_OUT (" << s.out
                      << "), which this run clears and then writes its own results into; nothing removed. Copy the "
                         "baseline out first and name the copy, e.g. cp -r "
                      << s.out << " kvgate-baseline && KVGATE_BASELINE=$PWD/kvgate-baseline ctest ...\n";
            return kExitError;
        }
    }
    const auto removed = kvgate::clear_results(s.out);
    std::cout << "cleared " << s.out << ": " << removed.size() << " file(s) of an earlier run removed\n";
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
        if (command == "run") return run(args);
        if (command == "measure") return measure(args);
        if (command == "curve") return run(with_front(kvgate::curve_phase_name, args));
        if (command == "report") return report(args);
        if (command == "clear") return clear(args);
        if (command == "compare") return compare(args);
        if (command == "settings") return std::cout << kvgate::settings_markdown(), 0;
        std::cerr << "unknown command '" << command << "'\n" << kUsage;
    } catch (const std::exception& e) {
        std::cerr << "kvgate " << command << ": " << e.what() << "\n";
    }
    return kExitError;
}
