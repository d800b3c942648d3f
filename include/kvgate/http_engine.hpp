// An OpenAI-compatible server measured over HTTP streaming, on cpp-httplib. What the server adds to
// the common API (tokenize, metrics, version, fixed output length) comes from its dialect.
//
// One keep-alive connection carries every timed request, so no TCP connect lands inside TTFT.
// TTFT = request handed to cpp-httplib -> arrival of the bytes that carry the first generated token
// (first non-empty content, reasoning content or completion text). Stamps are taken when bytes
// arrive; parsing waits until the stream has ended, so it never delays a stamp.
// Every request has a deadline and a cap on the bytes kept (bounded_client.hpp). What the server
// says of itself (version, decoded text) is masked like a fault message: the API key never leaves.
#pragma once

#include <httplib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bounded_client.hpp"
#include "dialect.hpp"
#include "engine.hpp"
#include "evidence.hpp"
#include "settings.hpp"
#include "sse.hpp"

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

class HttpEngine : public Engine {
public:
    HttpEngine(const Settings& settings, std::unique_ptr<OpenAiDialect> dialect)
        : settings_(checked(settings)),
          dialect_(std::move(dialect)),
          client_(std::make_unique<BoundedClient>(settings_.url, settings_, "KVGATE_URL")),
          side_(std::make_unique<BoundedClient>(settings_.url, settings_, "KVGATE_URL")) {
        if (!dialect_) throw std::invalid_argument("HttpEngine needs a dialect (engines.hpp makes one per engine kind)");
        if (const char* key = std::getenv(settings.api_key_env.c_str()); key && *key) api_key_ = key;
    }

    EngineInfo describe() override {
        EngineInfo info;
        info.name = dialect_->engine_name();
        info.url = settings_.url;
        info.endpoint = path();
        info.version = detail::server_text(dialect_->version(side_request()), api_key_);
        const auto view = metrics();
        info.block_size = view.block_size;
        info.prefix_caching = view.prefix_caching.value_or(true);
        dialect_->describe(info);
        return info;
    }

    std::optional<int> count_tokens(const std::string& prompt) override {
        return dialect_->count_tokens(side_request(), settings_.model, settings_.endpoint == Endpoint::chat, prompt);
    }

    std::optional<TokenIds> token_ids(const std::string& prompt) override {
        return dialect_->token_ids(side_request(), settings_.model, settings_.endpoint == Endpoint::chat, prompt);
    }

    std::optional<std::string> detokenize(const std::vector<int>& ids) override {
        auto text = dialect_->detokenize(side_request(), settings_.model, ids);
        if (text) *text = detail::server_text(*text, api_key_);
        return text;
    }

    Completion complete(const std::string& prompt, int max_tokens) override {
        return stream(request_body(prompt, max_tokens));
    }

    // Messages need the chat endpoint: /v1/completions takes one prompt string.
    bool takes_messages() const override { return settings_.endpoint == Endpoint::chat; }

    std::optional<std::vector<int>> message_token_ids(const std::vector<Message>& messages,
                                                      bool add_generation_prompt) override {
        return dialect_->message_token_ids(side_request(), settings_.model, messages_json(messages), add_generation_prompt);
    }

    Completion complete_messages(const std::vector<Message>& messages, int max_tokens) override {
        if (!takes_messages())
            throw std::logic_error("HttpEngine: chat messages need the chat endpoint, not '" + std::string(to_string(settings_.endpoint)) +
                                   "'; use --endpoint chat");
        auto body = base_body(max_tokens);
        body["messages"] = messages_json(messages);
        return stream(body);
    }

    CounterSnapshot prefix_cache_counters() override { return metrics().counters; }

private:
    // The server may have closed the keep-alive connection since the last request: vLLM after 5 s
    // idle (a settle), llama-server after every streamed reply (while announcing keep-alive).
    // cpp-httplib reconnects by itself only if the close has already arrived; otherwise it sends
    // on the dying connection and the request fails before headers, or a timed one would reconnect
    // inside its timing. A cheap request takes that race instead, retried once on a fresh
    // connection; its answer is not used.
    void refresh_connection() {
        if (client_->fetch("GET", "/v1/models", headers()).unanswered()) client_->fetch("GET", "/v1/models", headers());
    }

    // One arrival of stream bytes: when, and where in the kept bytes it ends.
    struct Arrival {
        Clock::time_point at;
        std::size_t end;
    };

    Completion stream(const nlohmann::json& body) {
        refresh_connection();
        httplib::Request req;
        req.method = "POST";
        req.path = path();
        req.headers = headers();
        req.headers.emplace("Accept", "text/event-stream");
        req.body = body.dump();
        req.set_header("Content-Type", "application/json");

        StreamReader reader(dialect_.get(), api_key_);
        req.response_handler = [&](const httplib::Response& res) {
            reader.on_headers(Clock::now(), res.status);
            return true;
        };
        // Bytes are only stamped and kept while the stream runs, and parsed once it has ended:
        // cpp-httplib hands over one HTTP chunk per call, so parsing inside the call would delay
        // the stamp of the next chunk of the same read (vLLM sends its role chunk together with
        // the first token). Measured by bench/ttft_fidelity: ~100 -> ~65 us error.
        // What is kept, the arrivals' bookkeeping included, stays within the body limit.
        std::string bytes;
        std::vector<Arrival> arrivals;
        // Room for a reply of some 200 chunks: a usual one reallocates nothing while it is timed.
        bytes.reserve(std::size_t{1} << 16);
        arrivals.reserve(256);
        bool over_limit = false;
        req.content_receiver = [&](const char* data, std::size_t len, std::uint64_t, std::uint64_t) {
            const auto at = Clock::now();
            if (bytes.size() + len + (arrivals.size() + 1) * sizeof(Arrival) > body_limit(reader.status())) {
                over_limit = true;
                return false;
            }
            bytes.append(data, len);
            arrivals.push_back({at, bytes.size()});
            return true;
        };
        const BoundedClient::Sent sent = client_->send(req);
        const auto ended = Clock::now();
        std::size_t from = 0;
        for (const auto& a : arrivals) {
            if (!reader.on_bytes(a.at, bytes.data() + from, a.end - from)) break;
            from = a.end;
        }

        Completion out;
        out.sent = sent.at;
        out.record = reader.record(sent.at);
        // The read timeout restarts with every arrival: a stall is the silence before the end,
        // not the length of the whole request.
        out.fault = classify(sent, over_limit, reader, ms_between(reader.last_arrival().value_or(sent.at), ended),
                             out.record);
        // Whatever the message quotes (the URL, the server's words): no key, valid UTF-8.
        if (out.fault) out.fault->message = detail::server_text(out.fault->message, api_key_);
        return out;
    }

    static Settings checked(Settings s) {
        if (s.url.empty()) throw std::invalid_argument("KVGATE_URL is empty: name the server to measure (--url)");
        s.url = checked_url(s.url);
        if (s.model.empty())
            throw std::invalid_argument("KVGATE_MODEL is empty: name the model the server serves (--model)");
        return s;
    }

    std::string path() const { return settings_.endpoint == Endpoint::chat ? "/v1/chat/completions" : "/v1/completions"; }

    httplib::Headers headers() const {
        httplib::Headers h;
        if (!api_key_.empty()) h.emplace("Authorization", "Bearer " + api_key_);
        return h;
    }

    nlohmann::json base_body(int max_tokens) const {
        nlohmann::json body = {
            {"model", settings_.model},
            {"max_tokens", max_tokens},
            {"stream", true},
            {"stream_options", {{"include_usage", true}}},
        };
        dialect_->ask_fixed_output(body, max_tokens);
        dialect_->shape_request(body);
        return body;
    }

    nlohmann::json request_body(const std::string& prompt, int max_tokens) const {
        auto body = base_body(max_tokens);
        if (settings_.endpoint == Endpoint::chat)
            body["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", prompt}}});
        else
            body["prompt"] = prompt;
        return body;
    }

    MetricsView metrics() { return dialect_->metrics(side_request()); }

    // The dialect's way to the server: the side connection, with the API key; no answer is status 0.
    // Side requests are idempotent (tokenize, metrics, version), so one that got no answer, as when
    // the server closed the kept-alive connection while it was sent (see refresh_connection), is
    // sent once more on a fresh connection; one past its deadline or body limit is not.
    SideRequest side_request() {
        return [this](const std::string& method, const std::string& path, const std::string& body) {
            Fetched res = side_->fetch(method, path, headers(), body);
            if (res.unanswered()) res = side_->fetch(method, path, headers(), body);
            return SideReply{res.status, std::move(res.body)};
        };
    }

    // Names what went wrong, if anything. A read error is told apart by when it struck: before
    // or after the headers, and after the full read timeout of silence (a stall) or sooner (a close).
    std::optional<Fault> classify(const BoundedClient::Sent& sent, bool over_limit, const StreamReader& reader,
                                  double silent_ms, const RequestRecord& record) const {
        if (reader.fault()) return reader.fault();
        const std::string where = " (" + settings_.url + path() + ")";
        if (over_limit && reader.status() < 400)
            return Fault{FaultKind::no_done, FaultStage::stream,
                         "the stream passed " + mib_text(max_body_bytes) + " without 'data: [DONE]'" + where +
                             ", far more than a reply of --max-output-tokens tokens: kvgate stopped reading; check "
                             "that the server ends its streams"};
        if (reader.status() >= 400 && (sent.result || over_limit))
            return Fault{FaultKind::http_status, FaultStage::headers,
                         "HTTP " + std::to_string(reader.status()) + where + ": " +
                             detail::server_error_message(reader.error_body(), api_key_) +
                             (over_limit ? " (the error body passed " + mib_text(max_error_body_bytes) +
                                               "; kvgate read no further)"
                                         : "")};
        if (sent.expired && !sent.result) return deadline_fault(record, where);
        const httplib::Result& res = sent.result;
        const double timeout_ms = settings_.read_timeout_s * 1000;
        const bool timed_out = silent_ms >= 0.95 * timeout_ms;
        if (!res) {
            switch (res.error()) {
                case httplib::Error::Connection:
                    return Fault{FaultKind::connection_refused, FaultStage::connect,
                                 "could not connect to " + settings_.url + ": is the server running?"};
                case httplib::Error::ConnectionTimeout:
                    return Fault{FaultKind::connect_timeout, FaultStage::connect,
                                 "no TCP connection to " + settings_.url + " within " +
                                     std::to_string(settings_.connect_timeout_s) + " s"};
                case httplib::Error::Read:
                    if (!record.stamps.headers_ms)
                        return timed_out ? Fault{FaultKind::read_timeout_before_headers, FaultStage::headers,
                                                 "no response headers within the read timeout of " +
                                                     std::to_string(settings_.read_timeout_s) + " s" + where}
                                         : Fault{FaultKind::closed_before_headers, FaultStage::headers,
                                                 "the server closed the connection before sending headers" + where};
                    return timed_out ? Fault{FaultKind::stalled_mid_stream, FaultStage::stream,
                                             "the stream stalled: no bytes for " +
                                                 std::to_string(settings_.read_timeout_s) + " s" + where}
                                     : Fault{FaultKind::closed_mid_stream, FaultStage::stream,
                                             "the server closed the connection mid-stream" + where};
                default:
                    return Fault{FaultKind::transport, record.stamps.headers_ms ? FaultStage::stream : FaultStage::send,
                                 "HTTP client error: " + httplib::to_string(res.error()) + where};
            }
        }
        if (!reader.done())
            return Fault{reader.has_partial_event() ? FaultKind::closed_mid_stream : FaultKind::no_done, FaultStage::stream,
                         reader.has_partial_event() ? "the stream ended inside an event" + where
                                                    : "the stream ended without 'data: [DONE]'" + where};
        if (reader.token_events() == 0)
            return Fault{FaultKind::no_tokens, FaultStage::stream, "the stream completed without a generated token" + where};
        return std::nullopt;
    }

    // The request outlived request_deadline_s while the server kept it alive (bytes, SSE comments or
    // header lines, each within the read timeout). The kinds are the nearest timeouts of each stage.
    Fault deadline_fault(const RequestRecord& record, const std::string& where) const {
        const std::string deadline = "the request deadline of " + seconds_text(request_deadline_s(settings_)) +
                                     (settings_.request_timeout_s > 0
                                          ? ""
                                          : " (" + std::to_string(read_timeouts_per_deadline) + " x the read timeout)");
        const std::string fix = ": the server kept the connection busy without finishing; check the server, or allow "
                                "slow replies more time with --request-timeout-s (KVGATE_REQUEST_TIMEOUT_S)";
        if (!record.stamps.headers_ms)
            return Fault{FaultKind::read_timeout_before_headers, FaultStage::headers,
                         "no complete response headers within " + deadline + where + fix};
        return Fault{FaultKind::stalled_mid_stream, FaultStage::stream,
                     "the stream did not end within " + deadline + where + fix};
    }

    Settings settings_;
    std::unique_ptr<OpenAiDialect> dialect_;
    std::unique_ptr<BoundedClient> client_;  // the timed requests' one keep-alive connection
    std::unique_ptr<BoundedClient> side_;    // tokenize, metrics, version: never on the timed connection
    std::string api_key_;
};

}  // namespace kvgate
