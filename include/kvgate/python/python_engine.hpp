// vLLM's offline `LLM` class in an embedded interpreter: no server, no HTTP.
//
// TTFT here is the seed's: wall time of a 1-token generate() call (prefill + one decode step),
// stamped in C++ around the call. The engine's own first-token latency (RequestOutput.metrics) is
// kept beside it. One interpreter per process (torch does not survive re-initialisation); it is
// made from the project's venv, whose Python must be the one this program links.
#pragma once

#include <pybind11/embed.h>
#include <pybind11/stl.h>

#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>

#include "kvgate/engine/engine.hpp"
#include "kvgate/engine/vllm.hpp"
#include "kvgate/model/settings.hpp"

namespace kvgate {

// A Python exception, carried into C++ with its traceback.
class PythonError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

inline std::string read_pyvenv_value(const std::filesystem::path& venv, const std::string& key) {
    std::ifstream in(venv / "pyvenv.cfg");
    for (std::string line; std::getline(in, line);) {
        const auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        auto trim = [](std::string s) {
            s.erase(0, s.find_first_not_of(" \t"));
            s.erase(s.find_last_not_of(" \t\r") + 1);
            return s;
        };
        if (trim(line.substr(0, eq)) == key) return trim(line.substr(eq + 1));
    }
    return {};
}

inline std::string format_python_error(pybind11::error_already_set& e) {
    namespace py = pybind11;
    try {
        const auto lines = py::module_::import("traceback").attr("format_exception")(e.type(), e.value(), e.trace());
        std::string text;
        for (const auto& line : lines) text += line.cast<std::string>();
        return text;
    } catch (const std::exception&) {
        return e.what();
    }
}

}  // namespace detail

// Why the embedded interpreter cannot use this venv, with what to do; nullopt when it can.
// Checked before the interpreter starts: a wrong venv must be a clear message, never a crash.
inline std::optional<std::string> python_environment_problem(const std::string& venv) {
    namespace fs = std::filesystem;
    const std::string setup = "run `bash cmake/setup.sh` (it makes the venv with /usr/bin/python3) or point "
                              "KVGATE_VENV at a venv made by the Python kvgate was built with";
    if (venv.empty()) return "no virtual environment given (KVGATE_VENV is empty); " + setup;
    if (!fs::exists(fs::path(venv) / "pyvenv.cfg")) return venv + " is not a Python virtual environment; " + setup;
    const std::string made_by = detail::read_pyvenv_value(venv, "version");
    if (made_by.empty() ? true : made_by != PY_VERSION)
        return venv + " was made by Python " + (made_by.empty() ? "(unknown)" : made_by) + " (home " +
               detail::read_pyvenv_value(venv, "home") + "), but this program embeds Python " PY_VERSION
               ": its packages would not load. Recreate the venv with the Python CMake found "
               "(-DPython_EXECUTABLE) or rebuild kvgate against the venv's Python; " +
               setup;
    const fs::path site = fs::path(venv) / "lib" / ("python" + std::to_string(PY_MAJOR_VERSION) + "." +
                                                    std::to_string(PY_MINOR_VERSION)) / "site-packages";
    if (!fs::exists(site / "vllm")) return "vLLM is not installed in " + venv + "; " + setup;
    return std::nullopt;
}

// The max_model_len the in-process engine asks for: KVGATE_MAX_MODEL_LEN (env) where set, else 1024
// without a GPU (the CPU fixture's, sized for its fixed 1 GiB KV cache), else none: vLLM then takes the
// model's own context (the smaller of its config's positions and its tokenizer's model_max_length;
// 8192 for the 8B-shaped GPU default, make_model.py). Throws on a value that is not a positive number.
inline std::optional<int> max_model_len_for(bool gpu, const char* env_value) {
    if (env_value && *env_value) {
        const std::string text = env_value;
        std::size_t used = 0;
        int n = 0;
        try {
            n = std::stoi(text, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != text.size() || n <= 0)
            throw std::invalid_argument("KVGATE_MAX_MODEL_LEN='" + text + "' is not a positive whole number of tokens");
        return n;
    }
    if (!gpu) return 1024;
    return std::nullopt;
}

// Hidden like pybind11's own types, which it holds (else GCC warns about the visibility mismatch).
// Reads the target's model, its own options (venv, dtype, dummy weights) and the run's prefix-caching
// switch, nothing else of the settings; the engine is set up as
// the test fixture's server (cmake/engine/engine.sh): eager mode; the context from
// KVGATE_MAX_MODEL_LEN, else 1024 on a CPU (with its 1 GiB KV cache) and the model's own on a GPU
// (max_model_len_for); on a GPU KVGATE_GPU_MEMORY_UTILIZATION (default 0.4) of its memory, so the
// fixture's server can run beside it.
class __attribute__((visibility("hidden"))) PythonEngine : public Engine {
public:
    PythonEngine(const Target& target, const PythonOptions& options, bool prefix_caching)
        : target_(target), options_(options), prefix_caching_(prefix_caching) {
        if (auto problem = python_environment_problem(options.venv)) throw std::invalid_argument(*problem);
        if (target.model.empty())
            throw std::invalid_argument("KVGATE_MODEL is empty: name the model directory or hub name (--model)");
        start_interpreter(options.venv);
        pybind11::gil_scoped_acquire gil;
        try {
            construct();
        } catch (pybind11::error_already_set& e) {
            throw PythonError("Python raised while constructing vllm.LLM:\n" + detail::format_python_error(e));
        }
    }

    ~PythonEngine() override {
        pybind11::gil_scoped_acquire gil;
        try {
            // Stops the engine-core child process now, not whenever the garbage collector runs.
            llm_.attr("llm_engine").attr("engine_core").attr("shutdown")();
        } catch (const pybind11::error_already_set&) {
        }
        // Every Python object goes while the GIL is held, not in the members' destructors.
        llm_ = generate_ = tokenizer_ = sampling_params_ = pybind11::none();
    }

    PythonEngine(const PythonEngine&) = delete;
    PythonEngine& operator=(const PythonEngine&) = delete;

    // After construction nothing throws: what Python cannot say stays unknown.
    EngineInfo describe() override {
        pybind11::gil_scoped_acquire gil;
        EngineInfo info;
        info.name = vllm::engine_name;
        info.endpoint = "LLM.generate";
        quietly([&] {
            info.version = pybind11::module_::import("vllm").attr("__version__").cast<std::string>();
            const auto cache = llm_.attr("llm_engine").attr("vllm_config").attr("cache_config");
            info.block_size = cache.attr("block_size").cast<int>();
            info.prefix_caching = cache.attr("enable_prefix_caching").cast<bool>();
        });
        return info;
    }

    std::optional<int> context_tokens() override {
        pybind11::gil_scoped_acquire gil;
        std::optional<int> n;
        quietly([&] { n = llm_.attr("llm_engine").attr("vllm_config").attr("model_config").attr("max_model_len").cast<int>(); });
        return n;
    }

    std::optional<int> count_tokens(const std::string& prompt) override {
        pybind11::gil_scoped_acquire gil;
        std::optional<int> n;
        // generate() tokenizes a text prompt with special tokens; so does this.
        quietly([&] { n = static_cast<int>(pybind11::len(tokenizer_.attr("encode")(prompt))); });
        return n;
    }

    std::optional<TokenIds> token_ids(const std::string& prompt) override {
        pybind11::gil_scoped_acquire gil;
        std::optional<TokenIds> ids;
        quietly([&] {
            TokenIds out;
            for (const auto& id : tokenizer_.attr("encode")(prompt)) out.push_back(id.cast<int>());
            ids = std::move(out);
        });
        return ids;
    }

    std::optional<std::string> detokenize(const std::vector<int>& ids) override {
        pybind11::gil_scoped_acquire gil;
        std::optional<std::string> text;
        quietly([&] { text = tokenizer_.attr("decode")(ids).cast<std::string>(); });
        return text;
    }

    // The seed's phase 2 times 1-token generations only: generate() returns at the end, so a longer
    // call would say nothing about the first token.
    int output_tokens(int) const override { return 1; }

    Completion complete(const std::string& prompt, int max_tokens) override {
        namespace py = pybind11;
        if (max_tokens != 1)
            throw std::invalid_argument("the in-process engine measures TTFT as the wall time of a 1-token "
                                        "generation (output_tokens()), not " + std::to_string(max_tokens));
        py::gil_scoped_acquire gil;
        Completion out;
        try {
            const py::object params = sampling_params_(py::arg("max_tokens") = max_tokens, py::arg("ignore_eos") = true);
            const py::list prompts(1);
            prompts[0] = py::str(prompt);
            const auto sent = Clock::now();
            const py::object outputs = generate_(prompts, params, py::arg("use_tqdm") = false);
            const double elapsed = ms_between(sent, Clock::now());
            const py::object first = outputs[py::int_(0)];
            auto& stamps = out.record.stamps;
            stamps.first_token_ms = elapsed;  // the seed's phase-2 TTFT
            stamps.last_token_ms = elapsed;
            stamps.done_ms = elapsed;
            out.record.usage.prompt_tokens = static_cast<int>(py::len(first.attr("prompt_token_ids")));
            out.record.usage.completion_tokens =
                static_cast<int>(py::len(first.attr("outputs")[py::int_(0)].attr("token_ids")));
            if (const py::object cached = first.attr("num_cached_tokens"); !cached.is_none())
                out.record.usage.cached_tokens = cached.cast<int>();
            // The engine core's scheduled -> first token, as the HTTP server reports it
            // (--enable-per-request-metrics), so both phases show the same engine-side figure.
            if (const py::object metrics = first.attr("metrics"); !metrics.is_none() &&
                                                                   py::hasattr(metrics, "scheduled_ts") &&
                                                                   py::hasattr(metrics, "first_token_ts")) {
                const double scheduled = metrics.attr("scheduled_ts").cast<double>();
                const double first_token = metrics.attr("first_token_ts").cast<double>();
                if (scheduled > 0 && first_token > 0) out.record.engine_ttft_ms = (first_token - scheduled) * 1000;
            }
        } catch (py::error_already_set& e) {
            out.fault = Fault{FaultKind::python_exception, FaultStage::generate,
                              valid_utf8("vLLM raised during LLM.generate:\n" + detail::format_python_error(e))};
        }
        return out;
    }

    CounterSnapshot prefix_cache_counters() override {
        namespace py = pybind11;
        py::gil_scoped_acquire gil;
        CounterSnapshot snap;
        bool queries = false, hits = false;
        quietly([&] {
            for (const auto& metric : llm_.attr("get_metrics")()) {
                const auto name = metric.attr("name").cast<std::string>();
                if (!py::hasattr(metric, "value")) continue;
                if (name == vllm::prefix_cache_queries) {
                    snap.queries += metric.attr("value").cast<double>();
                    queries = true;
                } else if (name == vllm::prefix_cache_hits) {
                    snap.hits += metric.attr("value").cast<double>();
                    hits = true;
                }
            }
        });
        snap.available = queries && hits;
        return snap;
    }

private:
    // Runs Python code whose failure only leaves a value unknown (describe, counters, token counts):
    // a finished run must never be lost to them.
    template <class F>
    static void quietly(F&& body) {
        try {
            body();
        } catch (const pybind11::error_already_set&) {
        } catch (const std::exception&) {  // pybind11::cast_error and friends
        }
    }

    // The interpreter starts once per process, on the venv, and lives until the process ends:
    // torch and vLLM's threads do not survive finalisation. The GIL is released between calls.
    static void start_interpreter(const std::string& venv) {
        static const std::string started_on = [&] {
            const std::string python = (std::filesystem::path(venv) / "bin" / "python").string();
            PyConfig config;
            PyConfig_InitPythonConfig(&config);
            config.install_signal_handlers = 0;
            // executable = the venv's python makes sys.prefix the venv (pyvenv.cfg) and is what
            // vLLM's spawned worker processes start: not the PATH search's guess.
            PyConfig_SetBytesString(&config, &config.executable, python.c_str());
            pybind11::initialize_interpreter(&config, 0, nullptr, false);
            pybind11::module_::import("multiprocessing").attr("set_executable")(python);
            PyEval_SaveThread();
            return venv;
        }();
        if (started_on != venv)
            throw std::logic_error("the embedded interpreter already runs on " + started_on + "; one per process");
    }

    void construct() {
        namespace py = pybind11;
        auto os = py::module_::import("os");
        // Before vLLM reads its environment: a fixed CPU KV cache, not a fraction of the machine;
        // as engine.sh, a value the user set wins (both phases then get the same cache).
        os.attr("environ").attr("setdefault")("VLLM_CPU_KVCACHE_SPACE", "1");
        const bool gpu = std::system("nvidia-smi > /dev/null 2>&1") == 0;
        if (!gpu) {
            // As engine.sh: every CPU to the model's threads (vLLM's auto binding keeps one for its scheduler).
            py::exec("import os\nos.environ.setdefault('VLLM_CPU_OMP_THREADS_BIND', "
                     "','.join(map(str, sorted(os.sched_getaffinity(0)))))");
            // The engine core and its worker in this process rather than two spawned ones: the
            // start-up took 36 s instead of 56 s on 2 cores, with the same TTFTs.
            os.attr("environ").attr("setdefault")("VLLM_ENABLE_V1_MULTIPROCESSING", "0");
        }
        const std::string prefix = py::module_::import("sys").attr("prefix").cast<std::string>();
        if (std::filesystem::weakly_canonical(prefix) != std::filesystem::weakly_canonical(options_.venv))
            throw std::invalid_argument("the embedded interpreter's prefix is " + prefix + ", not the venv " +
                                        options_.venv + "; make the venv with the Python kvgate links");
        // The interpreter must be the one holding torch and vLLM: the venv's, or (a venv made with
        // --system-site-packages, as on a GPU image whose torch lives in its system Python) the
        // system's site-packages it sees. Say which, rather than fail deep inside vLLM.
        try {
            py::module_::import("torch");
        } catch (py::error_already_set& e) {
            throw std::invalid_argument("the embedded Python (prefix " + prefix + ") cannot import torch: " +
                                        std::string(e.what()) + "; make the venv with the Python that holds torch "
                                        "(on a GPU image: python3 -m venv --system-site-packages)");
        }
        if (gpu)  // As engine.sh: vLLM's CUDA sampler imports FlashInfer unless this is 0 (set before vLLM reads it).
            py::exec("import importlib.util, os\nif importlib.util.find_spec('flashinfer') is None:\n"
                     "    os.environ.setdefault('VLLM_USE_FLASHINFER_SAMPLER', '0')");
        auto vllm = py::module_::import("vllm");
        py::dict kwargs;
        kwargs["model"] = target_.model;
        kwargs["enable_prefix_caching"] = prefix_caching_;
        if (const auto len = max_model_len_for(gpu, std::getenv("KVGATE_MAX_MODEL_LEN"))) kwargs["max_model_len"] = *len;
        if (gpu) {
            const char* util = std::getenv("KVGATE_GPU_MEMORY_UTILIZATION");
            kwargs["gpu_memory_utilization"] = (util && *util) ? std::stod(util) : 0.4;
        }
        kwargs["enforce_eager"] = true;
        kwargs["disable_log_stats"] = false;  // per-request metrics and the prefix-cache counters
        if (options_.dummy_weights) kwargs["load_format"] = "dummy";
        // As engine.sh: on CPUs without AMX, float32 ran about 5x faster than bf16/fp16.
        std::string dtype = options_.dtype;
        if (dtype.empty() && !gpu) dtype = "float32";
        if (!dtype.empty()) kwargs["dtype"] = dtype;
        llm_ = vllm.attr("LLM")(**kwargs);
        sampling_params_ = vllm.attr("SamplingParams");
        generate_ = llm_.attr("generate");
        tokenizer_ = llm_.attr("get_tokenizer")();
    }

    Target target_;
    PythonOptions options_;
    bool prefix_caching_;
    pybind11::object llm_, sampling_params_, generate_, tokenizer_;
};

}  // namespace kvgate
