// What an OpenAI-compatible server adds to the common API, behind one seam: its name and version,
// how it counts a prompt's tokens, where its prefix-cache counters are, how to ask for a fixed
// output length, and what it says about a request beyond `usage`. HttpEngine speaks the common
// API (streamed completions, usage, errors); a dialect supplies the rest. A new server needs its
// own dialect header and one factory entry (engines.hpp).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvgate/engine/evidence.hpp"
#include "kvgate/model/message.hpp"

namespace kvgate {

// A request on the side connection (never the timed one). status 0: no answer at all.
struct SideReply {
    int status = 0;
    std::string body;
};
using SideRequest = std::function<SideReply(const std::string& method, const std::string& path, const std::string& body)>;

// Chat messages as the OpenAI API takes them.
inline nlohmann::json messages_json(const std::vector<Message>& messages) {
    auto out = nlohmann::json::array();
    for (const auto& m : messages) out.push_back({{"role", role_name(m.role)}, {"content", m.content}});
    return out;
}

// The server's own account of one request, from its stream's chunks.
struct EngineAccount {
    std::optional<double> ttft_ms;     // its own first-token (or prompt-processing) time
    std::optional<int> cached_tokens;  // where `usage` does not carry them
};

// What the verdict tells a user to change on one engine: the server's own flags and mechanisms.
// Each engine's words live in its dialect header (its `advice()`); the verdict, which also decides
// runs read back from results files, finds them by the phase's engine kind (advice.hpp). Empty
// members fall back to the engine-neutral words the verdict has.
struct EngineAdvice {
    std::string turn_caching_on;   // the server cached nothing: how caching is turned on
    std::string make_room;         // the warmed prefix was gone by the query: how to keep it
    std::string route_by_prefix;   // a fleet's router moved hits off their warm replica
    std::string miss_waits_cause;  // misses wait outside the engine's prompt work: the engine's reason
    std::string prefill_alone;     // and how to measure prefill without it
    std::string chunk_reuse_flag;  // the server option behind shifted-chunk reuse
    std::string report_cached_tokens;  // how to make it report cached tokens per request
};

class OpenAiDialect {
public:
    virtual ~OpenAiDialect() = default;
    virtual std::string engine_name() const = 0;
    // Unknown values are empty / nullopt; none of these may throw.
    virtual std::string version(const SideRequest& side) const = 0;
    virtual std::optional<int> count_tokens(const SideRequest& side, const std::string& model, bool chat,
                                            const std::string& prompt) const = 0;
    // Token ids of chat `messages` (messages_json) rendered by the server's template, with or
    // without the generation prompt; nullopt where the server cannot say (the default).
    virtual std::optional<std::vector<int>> message_token_ids(const SideRequest& /*side*/, const std::string& /*model*/,
                                                              const nlohmann::json& /*messages*/,
                                                              bool /*add_generation_prompt*/) const {
        return std::nullopt;
    }
    // The ids of the prompt as the server renders it; nullopt where the server cannot say.
    virtual std::optional<std::vector<int>> token_ids(const SideRequest&, const std::string& /*model*/, bool /*chat*/,
                                                      const std::string& /*prompt*/) const {
        return std::nullopt;
    }
    // Text for ids, to show where two renderings diverge. nullopt: cannot say.
    virtual std::optional<std::string> detokenize(const SideRequest&, const std::string& /*model*/,
                                                  const std::vector<int>& /*ids*/) const {
        return std::nullopt;
    }
    // The most tokens one request may hold, prompt and output together (vLLM's max_model_len);
    // nullopt where the server cannot say (the default).
    virtual std::optional<int> context_tokens(const SideRequest& /*side*/, const std::string& /*model*/) const {
        return std::nullopt;
    }
    virtual MetricsView metrics(const SideRequest& side) const = 0;
    // Adds to a completion request what makes it generate exactly `max_tokens` tokens.
    virtual void ask_fixed_output(nlohmann::json& body, int max_tokens) const = 0;
    // Adds the engine's own request fields (cache switches) to every completion request.
    virtual void shape_request(nlohmann::json&) const {}
    // Adds what the dialect knows of the engine beyond name, version and metrics (called last).
    virtual void describe(EngineInfo&) const {}
    // Reads whatever the server adds to a stream chunk (called for every parsed chunk).
    virtual void read_chunk(const nlohmann::json& chunk, EngineAccount& account) const = 0;
};

}  // namespace kvgate
