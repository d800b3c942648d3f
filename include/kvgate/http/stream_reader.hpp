// Follows one streamed response of an OpenAI-compatible server: bytes in (with their arrival time)
// -> first-token stamp, usage, faults. Kept apart from the socket (http_engine.hpp feeds it) so that
// every edge case can be fed to it directly. Also the masking of what a server says of itself: its
// error messages and its texts reach records only with the API key masked and as valid UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kvgate/engine/dialect.hpp"
#include "kvgate/engine/engine.hpp"
#include "kvgate/engine/evidence.hpp"
#include "kvgate/engine/sse.hpp"
#include "kvgate/http/bounded_client.hpp"  // the byte limits a stream is held to

namespace kvgate {

namespace detail {

// The server's own words from an error body (its JSON message where it has one), as a fault
// excerpt: `secret` masked before the cut, valid UTF-8 after it.
inline std::string server_error_message(const std::string& body, const std::string& secret = {}) {
    constexpr std::size_t limit = 500;
    const auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_discarded() && j.is_object()) {
        const auto& err = j.contains("error") ? j["error"] : j;
        if (err.is_object() && err.contains("message") && err["message"].is_string())
            return fault_excerpt(err["message"].get<std::string>(), limit, secret);
        if (err.is_string()) return fault_excerpt(err.get<std::string>(), limit, secret);
        if (j.contains("detail")) return fault_excerpt(j["detail"].dump(), limit, secret);
    }
    return fault_excerpt(body, limit, secret);
}

// A string the server chose, fit for a record or a report: `secret` masked, valid UTF-8.
inline std::string server_text(const std::string& text, const std::string& secret) {
    return valid_utf8(redacted(text, secret));
}

inline std::optional<double> since(Clock::time_point t0, std::optional<Clock::time_point> t) {
    if (!t) return std::nullopt;
    return ms_between(t0, *t);
}

}  // namespace detail

// Follows one streamed response: bytes in (with their arrival time) -> stamps, usage, faults.
// Kept apart from the socket so that every edge case can be fed to it directly.
class StreamReader {
public:
    // `dialect` (optional, must outlive the reader) reads what the server adds to each chunk;
    // `secret` (the API key) is masked in every fault text the reader makes.
    explicit StreamReader(const OpenAiDialect* dialect = nullptr, std::string secret = {})
        : dialect_(dialect), secret_(std::move(secret)) {}

    void on_headers(Clock::time_point at, int status) {
        headers_at_ = at;
        last_arrival_at_ = at;
        status_ = status;
    }

    // Returns false to stop reading (a fault was found).
    bool on_bytes(Clock::time_point at, const char* data, std::size_t len) {
        if (!first_byte_at_) first_byte_at_ = at;
        last_arrival_at_ = at;
        if (status_ >= 400) {  // an error body, not a stream: keep it for the message
            error_body_.append(data, len);
            return true;
        }
        for (auto& event : parser_.feed(std::string_view(data, len))) {
            if (!first_event_at_) first_event_at_ = at;
            if (!on_event(at, event)) return false;
        }
        if (parser_.overflowed()) {
            fault_ = Fault{FaultKind::malformed_chunk, FaultStage::stream,
                           "an SSE line or event passed " + mib_text(parser_.max_event_bytes()) +
                               " without ending (no blank line): this is no stream of server-sent events kvgate can "
                               "read; check that the URL is the OpenAI-compatible server"};
            return false;
        }
        return true;
    }

    bool done() const { return done_at_.has_value(); }
    const std::optional<Fault>& fault() const { return fault_; }
    int status() const { return status_; }
    const std::string& error_body() const { return error_body_; }
    bool has_partial_event() const { return parser_.has_partial_event(); }
    // When the headers or bytes last arrived; nullopt before the headers.
    std::optional<Clock::time_point> last_arrival() const { return last_arrival_at_; }

    RequestRecord record(Clock::time_point sent) const {
        RequestRecord r;
        r.stamps.headers_ms = detail::since(sent, headers_at_);
        r.stamps.first_byte_ms = detail::since(sent, first_byte_at_);
        r.stamps.first_event_ms = detail::since(sent, first_event_at_);
        r.stamps.first_token_ms = detail::since(sent, first_token_at_);
        r.stamps.last_token_ms = detail::since(sent, last_token_at_);
        r.stamps.done_ms = detail::since(sent, done_at_);
        r.usage = usage_;
        if (r.usage.cached_tokens < 0 && account_.cached_tokens) r.usage.cached_tokens = *account_.cached_tokens;
        r.engine_ttft_ms = account_.ttft_ms;
        return r;
    }

    int token_events() const { return token_events_; }

private:
    bool on_event(Clock::time_point at, const SseEvent& event) {
        if (event.data == "[DONE]") {
            done_at_ = at;
            return true;
        }
        const auto j = nlohmann::json::parse(event.data, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
            fault_ = Fault{FaultKind::malformed_chunk, FaultStage::stream,
                           "the server sent an event that is not a JSON object: '" + fault_excerpt(event.data, 200, secret_) + "'"};
            return false;
        }
        if (j.contains("error")) {
            fault_ = Fault{FaultKind::error_event, FaultStage::stream,
                           "the server reported an error mid-stream: " + detail::server_error_message(event.data, secret_)};
            return false;
        }
        if (j.contains("choices") && j["choices"].is_array())
            for (const auto& choice : j["choices"])
                if (carries_token(choice)) {
                    if (!first_token_at_) first_token_at_ = at;
                    last_token_at_ = at;
                    ++token_events_;
                }
        if (j.contains("usage") && j["usage"].is_object()) read_usage(j["usage"]);
        if (dialect_) dialect_->read_chunk(j, account_);
        return true;
    }

    static bool non_empty_string(const nlohmann::json& obj, const char* key) {
        if (!obj.is_object()) return false;
        auto it = obj.find(key);
        return it != obj.end() && it->is_string() && !it->get_ref<const std::string&>().empty();
    }

    static bool has_string(const nlohmann::json& obj, const char* key) {
        if (!obj.is_object()) return false;
        auto it = obj.find(key);
        return it != obj.end() && it->is_string();
    }

    // A chunk carries a generated token when it has text, or, with no text, when it is a content
    // delta that is not the role announcement: a token whose text is empty (a special token, one
    // byte of a multi-byte character) still arrives as its own chunk, `"content": ""` (vLLM sends
    // one chunk per token, serving.py: DeltaMessage(content=delta_text)). That chunk is the moment
    // the first token was there, so it stamps TTFT; the role-only first chunk never does, nor does a
    // finish-only chunk without a content field. usage.completion_tokens stays the count.
    static bool carries_token(const nlohmann::json& choice) {
        if (has_string(choice, "text")) return true;  // /v1/completions: one chunk per token
        if (!choice.is_object() || !choice.contains("delta")) return false;
        const auto& delta = choice["delta"];
        if (non_empty_string(delta, "content") || non_empty_string(delta, "reasoning_content") ||
            non_empty_string(delta, "reasoning"))
            return true;
        if (!delta.is_object() || delta.contains("role")) return false;
        return has_string(delta, "content") || has_string(delta, "reasoning_content") || has_string(delta, "reasoning");
    }

    void read_usage(const nlohmann::json& u) {
        auto int_at = [](const nlohmann::json& o, const char* k) {
            return o.contains(k) && o[k].is_number_integer() ? o[k].get<int>() : -1;
        };
        usage_.prompt_tokens = int_at(u, "prompt_tokens");
        usage_.completion_tokens = int_at(u, "completion_tokens");
        if (u.contains("prompt_tokens_details") && u["prompt_tokens_details"].is_object())
            usage_.cached_tokens = int_at(u["prompt_tokens_details"], "cached_tokens");
    }

    const OpenAiDialect* dialect_;
    std::string secret_;
    SseParser parser_;
    int status_ = 0;
    std::string error_body_;
    std::optional<Clock::time_point> headers_at_, first_byte_at_, first_event_at_, first_token_at_, last_token_at_,
        done_at_, last_arrival_at_;
    Usage usage_;
    EngineAccount account_;
    std::optional<Fault> fault_;
    int token_events_ = 0;
};

}  // namespace kvgate
