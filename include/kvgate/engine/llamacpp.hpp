// Everything kvgate knows about llama.cpp's server (llama-server) that is not the OpenAI API.
//
// Its prompt cache differs from vLLM's: each slot keeps the KV of the last prompt it served and a
// new prompt reuses the longest common token prefix (single-token granularity: block size 1; at
// least one prompt token is always recomputed). With `n_cache_reuse` > 0 (the server's
// --cache-reuse) it also shifts matching chunks of at least that many tokens found after the point
// of divergence into place: a miss [B,Q] sent after [A,B] can then reuse B. Caching is a request
// field (`cache_prompt`; the server's --no-cache-prompt only sets its default), and so is the
// chunk reuse: kvgate sends both, so what it reports is what the server was asked to do.
//
// Evidence: usage.prompt_tokens_details.cached_tokens and `timings` (cache_n, prompt_n, prompt_ms)
// in the final stream chunk; with --metrics, Prometheus counters of processed (uncached) and cached
// prompt tokens. /tokenize takes {"content": text}; /apply-template renders chat messages.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvgate/engine/dialect.hpp"
#include "kvgate/engine/evidence.hpp"

namespace kvgate::llamacpp {

inline constexpr const char* engine_name = "llama.cpp";
// Prometheus names (llama-server --metrics). prompt_tokens counts the tokens it processed, which
// excludes the cached ones.
inline constexpr const char* prompt_tokens_total = "llamacpp:prompt_tokens_total";
inline constexpr const char* prompt_tokens_cached_total = "llamacpp:prompt_tokens_cached_total";

// The counters as vLLM's are read: queries = every prompt token looked up, hits = the cached ones.
inline MetricsView metrics_view(const std::string& exposition) {
    MetricsView view;
    bool saw_processed = false, saw_cached = false;
    double processed = 0, cached = 0;
    for (const auto& sample : parse_prometheus(exposition)) {
        if (sample.name == prompt_tokens_total) {
            processed += sample.value;
            saw_processed = true;
        } else if (sample.name == prompt_tokens_cached_total) {
            cached += sample.value;
            saw_cached = true;
        }
    }
    view.counters.available = saw_processed && saw_cached;
    if (view.counters.available) {
        view.counters.queries = processed + cached;
        view.counters.hits = cached;
    }
    view.block_size = 1;
    return view;
}

// The ids the server's tokenizer gives `text` as a completion prompt (specials parsed, BOS as the
// model says), or nullopt.
inline std::optional<std::vector<int>> tokenize(const SideRequest& side, const std::string& text) {
    const nlohmann::json body = {{"content", text}, {"add_special", true}, {"parse_special", true}};
    const SideReply res = side("POST", "/tokenize", body.dump());
    if (res.status != 200) return std::nullopt;
    const auto j = nlohmann::json::parse(res.body, nullptr, false);
    if (!j.is_object() || !j.contains("tokens") || !j["tokens"].is_array()) return std::nullopt;
    std::vector<int> ids;
    for (const auto& t : j["tokens"]) {
        if (!t.is_number_integer()) return std::nullopt;  // {"piece": ...} objects: not asked for
        ids.push_back(t.get<int>());
    }
    return ids;
}

// The chat prompt the server renders for one user message (its chat template), or nullopt.
inline std::optional<std::string> apply_template(const SideRequest& side, const std::string& content) {
    const nlohmann::json body = {{"messages", nlohmann::json::array({{{"role", "user"}, {"content", content}}})}};
    const SideReply res = side("POST", "/apply-template", body.dump());
    if (res.status != 200) return std::nullopt;
    const auto j = nlohmann::json::parse(res.body, nullptr, false);
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string()) return std::nullopt;
    return j["prompt"].get<std::string>();
}

class Dialect : public OpenAiDialect {
public:
    // cache_prompt: false for the negative control. cache_reuse: the least chunk shifted after a
    // divergence (n_cache_reuse), 0 = off.
    explicit Dialect(bool cache_prompt = true, int cache_reuse = 0)
        : cache_prompt_(cache_prompt), cache_reuse_(cache_reuse) {}

    std::string engine_name() const override { return llamacpp::engine_name; }

    // /props' build_info ("b<build>-<commit>").
    std::string version(const SideRequest& side) const override {
        const SideReply res = side("GET", "/props", "");
        if (res.status != 200) return {};
        const auto j = nlohmann::json::parse(res.body, nullptr, false);
        if (j.is_object() && j.contains("build_info") && j["build_info"].is_string())
            return "llama.cpp " + j["build_info"].get<std::string>();
        return {};
    }

    // /props' default_generation_settings.n_ctx: the context of one slot, which a request must fit.
    std::optional<int> context_tokens(const SideRequest& side, const std::string&) const override {
        const SideReply res = side("GET", "/props", "");
        if (res.status != 200) return std::nullopt;
        const auto j = nlohmann::json::parse(res.body, nullptr, false);
        if (!j.is_object() || !j.contains("default_generation_settings")) return std::nullopt;
        const auto& g = j["default_generation_settings"];
        if (!g.is_object() || !g.contains("n_ctx") || !g["n_ctx"].is_number_integer()) return std::nullopt;
        const int n = g["n_ctx"].get<int>();
        return n > 0 ? std::optional<int>(n) : std::nullopt;
    }

    // Chat prompts are rendered by the server's template first, as the completion will be.
    std::optional<int> count_tokens(const SideRequest& side, const std::string&, bool chat,
                                    const std::string& prompt) const override {
        std::optional<std::string> text = chat ? apply_template(side, prompt) : prompt;
        if (!text) return std::nullopt;
        const auto ids = tokenize(side, *text);
        if (!ids) return std::nullopt;
        return static_cast<int>(ids->size());
    }

    MetricsView metrics(const SideRequest& side) const override {
        const SideReply res = side("GET", "/metrics", "");
        if (res.status != 200) {  // without --metrics: no counters, but the granularity is still known
            MetricsView view;
            view.block_size = 1;
            return view;
        }
        return metrics_view(res.body);
    }

    void ask_fixed_output(nlohmann::json& body, int max_tokens) const override {
        body["max_tokens"] = max_tokens;
        body["ignore_eos"] = true;
    }

    void shape_request(nlohmann::json& body) const override {
        body["cache_prompt"] = cache_prompt_;
        body["n_cache_reuse"] = cache_reuse_;
    }

    void describe(EngineInfo& info) const override {
        info.block_size = 1;
        info.prefix_caching = cache_prompt_;
        info.shifted_chunk_reuse = cache_prompt_ ? cache_reuse_ : 0;
    }

    // `timings` rides on the final chunk (with include_usage) or on the one with finish_reason:
    // prompt_ms is the server's own prompt-processing time, cache_n its cached tokens.
    void read_chunk(const nlohmann::json& chunk, EngineAccount& account) const override {
        const auto timings = chunk.find("timings");
        if (timings == chunk.end() || !timings->is_object()) return;
        const auto prompt_ms = timings->find("prompt_ms");
        if (prompt_ms != timings->end() && prompt_ms->is_number()) account.ttft_ms = prompt_ms->get<double>();
        const auto cache_n = timings->find("cache_n");
        if (cache_n != timings->end() && cache_n->is_number_integer()) account.cached_tokens = cache_n->get<int>();
    }

private:
    bool cache_prompt_;
    int cache_reuse_;
};

// llama.cpp's words for the verdict's fixes (EngineAdvice): caching is a request field, a slot keeps
// only the last prompt it served, and the host prompt cache copies KV outside the prompt's work.
inline EngineAdvice advice() {
    EngineAdvice a;
    a.turn_caching_on = "turn prefix caching on (llama.cpp: requests with cache_prompt true, which kvgate sends unless "
                        "--no-prefix-caching)";
    a.make_room = "keep the warmed slot for the query (llama.cpp: a slot keeps only the last prompt it served; give "
                  "other traffic slots of its own, --parallel), or run the gate where no other requests share the server";
    a.miss_waits_cause = "llama-server's host prompt cache, --cache-ram, copies the slot's KV before a prompt that does "
                         "not match it";
    a.prefill_alone = "measure the engine as it serves prefill alone (llama-server --cache-ram 0, kvgate's llama.cpp "
                      "fixture's default), or read the saving as cache management, not prefill";
    a.chunk_reuse_flag = "--cache-reuse";
    return a;
}

}  // namespace kvgate::llamacpp
