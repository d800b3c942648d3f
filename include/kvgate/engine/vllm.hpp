// Everything kvgate knows about vLLM that is not the OpenAI API: metric names, /tokenize, /version,
// ignore_eos, and the per-request metrics extension. Used by the HTTP dialect and the in-process engine.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvgate/engine/dialect.hpp"
#include "kvgate/engine/evidence.hpp"

namespace kvgate::vllm {

inline constexpr const char* engine_name = "vllm";
// Prometheus (server) names; the in-process LLM.get_metrics() names lack the _total suffix.
inline constexpr const char* prefix_cache_queries = "vllm:prefix_cache_queries";
inline constexpr const char* prefix_cache_hits = "vllm:prefix_cache_hits";
inline constexpr const char* cache_config_info = "vllm:cache_config_info";

// The prefix-cache counters (summed over label sets: one per engine / model) and the cache config.
inline MetricsView metrics_view(const std::string& exposition) {
    MetricsView view;
    bool saw_queries = false, saw_hits = false;
    const std::string queries = std::string(prefix_cache_queries) + "_total";
    const std::string hits = std::string(prefix_cache_hits) + "_total";
    for (const auto& sample : parse_prometheus(exposition)) {
        if (sample.name == queries) {
            view.counters.queries += sample.value;
            saw_queries = true;
        } else if (sample.name == hits) {
            view.counters.hits += sample.value;
            saw_hits = true;
        } else if (sample.name == cache_config_info) {
            view.block_size = std::atoi(detail::label_value(sample.labels, "block_size").c_str());
            const auto caching = detail::label_value(sample.labels, "enable_prefix_caching");
            if (!caching.empty()) view.prefix_caching = caching == "True" || caching == "true";
        }
    }
    view.counters.available = saw_queries && saw_hits;
    return view;
}

// /tokenize's "tokens" as ids; nullopt when the answer has none or holds anything but integers.
inline std::optional<std::vector<int>> token_list(const nlohmann::json& j) {
    if (!j.is_object() || !j.contains("tokens") || !j["tokens"].is_array()) return std::nullopt;
    std::vector<int> ids;
    for (const auto& t : j["tokens"]) {
        if (!t.is_number_integer()) return std::nullopt;
        ids.push_back(t.get<int>());
    }
    return ids;
}

class Dialect : public OpenAiDialect {
public:
    std::string engine_name() const override { return vllm::engine_name; }

    std::string version(const SideRequest& side) const override {
        const SideReply res = side("GET", "/version", "");
        if (res.status != 200) return {};
        const auto j = nlohmann::json::parse(res.body, nullptr, false);
        if (j.is_object() && j.contains("version") && j["version"].is_string()) return j["version"].get<std::string>();
        return {};
    }

    // /tokenize applies the chat template to messages, as the completion request will.
    std::optional<int> count_tokens(const SideRequest& side, const std::string& model, bool chat,
                                    const std::string& prompt) const override {
        const auto j = tokenize(side, model, chat, prompt);
        if (!j.is_object() || !j.contains("count") || !j["count"].is_number_integer()) return std::nullopt;
        return j["count"].get<int>();
    }

    // /tokenize answers with the served max_model_len beside the count.
    std::optional<int> context_tokens(const SideRequest& side, const std::string& model) const override {
        const auto j = tokenize(side, model, false, "kvgate");
        if (!j.is_object() || !j.contains("max_model_len") || !j["max_model_len"].is_number_integer()) return std::nullopt;
        const int n = j["max_model_len"].get<int>();
        return n > 0 ? std::optional<int>(n) : std::nullopt;
    }

    std::optional<std::vector<int>> token_ids(const SideRequest& side, const std::string& model, bool chat,
                                              const std::string& prompt) const override {
        const auto j = tokenize(side, model, chat, prompt);
        return token_list(j);
    }

    // /tokenize's answer, or null when there is none.
    static nlohmann::json tokenize(const SideRequest& side, const std::string& model, bool chat,
                                   const std::string& prompt) {
        nlohmann::json body = {{"model", model}};
        if (chat)
            body["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", prompt}}});
        else
            body["prompt"] = prompt;
        const SideReply res = side("POST", "/tokenize", body.dump());
        if (res.status != 200) return nullptr;
        const auto j = nlohmann::json::parse(res.body, nullptr, false);
        return j.is_discarded() ? nlohmann::json(nullptr) : j;
    }

    // /tokenize renders messages with the chat template; add_generation_prompt false ends the
    // rendering where a next message would start.
    std::optional<std::vector<int>> message_token_ids(const SideRequest& side, const std::string& model,
                                                      const nlohmann::json& messages,
                                                      bool add_generation_prompt) const override {
        const nlohmann::json body = {
            {"model", model}, {"messages", messages}, {"add_generation_prompt", add_generation_prompt}};
        const SideReply res = side("POST", "/tokenize", body.dump());
        if (res.status != 200) return std::nullopt;
        const auto j = nlohmann::json::parse(res.body, nullptr, false);
        return token_list(j);
    }

    std::optional<std::string> detokenize(const SideRequest& side, const std::string& model,
                                          const std::vector<int>& ids) const override {
        const SideReply res = side("POST", "/detokenize", nlohmann::json{{"model", model}, {"tokens", ids}}.dump());
        if (res.status != 200) return std::nullopt;
        const auto j = nlohmann::json::parse(res.body, nullptr, false);
        if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string()) return std::nullopt;
        return j["prompt"].get<std::string>();
    }

    MetricsView metrics(const SideRequest& side) const override {
        const SideReply res = side("GET", "/metrics", "");
        if (res.status != 200) return {};
        return metrics_view(res.body);
    }

    // A vLLM extension: fixed-length output, so arms compare alike. Sampling stays the server's
    // default: greedy decoding on random weights can repeat a special token, whose text is empty,
    // and a stream of empty deltas shows no first token.
    void ask_fixed_output(nlohmann::json& body, int max_tokens) const override {
        body["max_tokens"] = max_tokens;
        body["ignore_eos"] = true;
    }

    // --enable-per-request-metrics adds the engine core's own first-token time (scheduled -> first
    // token, ms) to the final usage chunk: vLLM 0.32 as a top-level `metrics` object; `usage` is read
    // too for servers that put it there.
    void read_chunk(const nlohmann::json& chunk, EngineAccount& account) const override {
        for (const char* holder : {"metrics", "usage"}) {
            const auto object = chunk.find(holder);
            if (object == chunk.end() || !object->is_object()) continue;
            const auto ttft = object->find("time_to_first_token_ms");
            if (ttft != object->end() && ttft->is_number()) account.ttft_ms = ttft->get<double>();
        }
    }
};

// vLLM's words for the verdict's fixes (EngineAdvice); the fleet's router is vllm-router.
inline EngineAdvice advice() {
    EngineAdvice a;
    a.turn_caching_on = "turn prefix caching on in the server (vLLM: it is on by default; drop --no-enable-prefix-caching)";
    a.make_room = "give the KV cache room for the warmed prefix beside the other traffic (vLLM: --gpu-memory-utilization, "
                  "--kv-cache-memory-bytes, VLLM_CPU_KVCACHE_SPACE; no --num-gpu-blocks-override that small), or run the "
                  "gate where no other requests share the server";
    a.route_by_prefix = "route by prefix (vllm-router --policy cache_aware) or keep a conversation on one replica "
                        "(session affinity)";
    a.report_cached_tokens = "vLLM: --enable-prompt-tokens-details";
    return a;
}

}  // namespace kvgate::vllm
