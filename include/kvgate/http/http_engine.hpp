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

#include "kvgate/engine/dialect.hpp"
#include "kvgate/engine/engine.hpp"
#include "kvgate/engine/evidence.hpp"
#include "kvgate/http/bounded_client.hpp"
#include "kvgate/http/stream_reader.hpp"
#include "kvgate/model/settings.hpp"

namespace kvgate {

class HttpEngine : public Engine {
public:
    // The target alone: what the server is asked beyond it is the dialect's (engines.hpp gives each
    // dialect its own options).
    HttpEngine(const Target& target, std::unique_ptr<OpenAiDialect> dialect)
        : target_(checked(target)),
          dialect_(std::move(dialect)),
          client_(std::make_unique<BoundedClient>(target_.url, target_, "KVGATE_URL")),
          side_(std::make_unique<BoundedClient>(target_.url, target_, "KVGATE_URL")) {
        if (!dialect_) throw std::invalid_argument("HttpEngine needs a dialect (engines.hpp makes one per engine kind)");
        if (const char* key = std::getenv(target.api_key_env.c_str()); key && *key) api_key_ = key;
    }

    EngineInfo describe() override {
        EngineInfo info;
        info.name = dialect_->engine_name();
        info.url = target_.url;
        info.endpoint = path();
        info.version = detail::server_text(dialect_->version(side_request()), api_key_);
        const auto view = metrics();
        info.block_size = view.block_size;
        info.prefix_caching = view.prefix_caching.value_or(true);
        dialect_->describe(info);
        return info;
    }

    std::optional<int> count_tokens(const std::string& prompt) override {
        return dialect_->count_tokens(side_request(), target_.model, target_.endpoint == Endpoint::chat, prompt);
    }

    std::optional<TokenIds> token_ids(const std::string& prompt) override {
        return dialect_->token_ids(side_request(), target_.model, target_.endpoint == Endpoint::chat, prompt);
    }

    std::optional<std::string> detokenize(const std::vector<int>& ids) override {
        auto text = dialect_->detokenize(side_request(), target_.model, ids);
        if (text) *text = detail::server_text(*text, api_key_);
        return text;
    }

    Completion complete(const std::string& prompt, int max_tokens) override {
        return stream(request_body(prompt, max_tokens));
    }

    // Messages need the chat endpoint: /v1/completions takes one prompt string.
    std::optional<int> context_tokens() override { return dialect_->context_tokens(side_request(), target_.model); }

    bool takes_messages() const override { return target_.endpoint == Endpoint::chat; }

    std::optional<std::vector<int>> message_token_ids(const std::vector<Message>& messages,
                                                      bool add_generation_prompt) override {
        return dialect_->message_token_ids(side_request(), target_.model, messages_json(messages), add_generation_prompt);
    }

    Completion complete_messages(const std::vector<Message>& messages, int max_tokens) override {
        if (!takes_messages())
            throw std::logic_error("HttpEngine: chat messages need the chat endpoint, not '" + std::string(to_string(target_.endpoint)) +
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

    static Target checked(Target t) {
        if (t.url.empty()) throw std::invalid_argument("KVGATE_URL is empty: name the server to measure (--url)");
        t.url = checked_url(t.url);
        if (t.model.empty())
            throw std::invalid_argument("KVGATE_MODEL is empty: name the model the server serves (--model)");
        return t;
    }

    std::string path() const { return target_.endpoint == Endpoint::chat ? "/v1/chat/completions" : "/v1/completions"; }

    httplib::Headers headers() const {
        httplib::Headers h;
        if (!api_key_.empty()) h.emplace("Authorization", "Bearer " + api_key_);
        return h;
    }

    nlohmann::json base_body(int max_tokens) const {
        nlohmann::json body = {
            {"model", target_.model},
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
        if (target_.endpoint == Endpoint::chat)
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
        const std::string where = " (" + target_.url + path() + ")";
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
        const double timeout_ms = target_.read_timeout_s * 1000;
        const bool timed_out = silent_ms >= 0.95 * timeout_ms;
        if (!res) {
            switch (res.error()) {
                case httplib::Error::Connection:
                    return Fault{FaultKind::connection_refused, FaultStage::connect,
                                 "could not connect to " + target_.url + ": is the server running?"};
                case httplib::Error::ConnectionTimeout:
                    return Fault{FaultKind::connect_timeout, FaultStage::connect,
                                 "no TCP connection to " + target_.url + " within " +
                                     std::to_string(target_.connect_timeout_s) + " s"};
                case httplib::Error::Read:
                    if (!record.stamps.headers_ms)
                        return timed_out ? Fault{FaultKind::read_timeout_before_headers, FaultStage::headers,
                                                 "no response headers within the read timeout of " +
                                                     std::to_string(target_.read_timeout_s) + " s" + where}
                                         : Fault{FaultKind::closed_before_headers, FaultStage::headers,
                                                 "the server closed the connection before sending headers" + where};
                    return timed_out ? Fault{FaultKind::stalled_mid_stream, FaultStage::stream,
                                             "the stream stalled: no bytes for " +
                                                 std::to_string(target_.read_timeout_s) + " s" + where}
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
        const std::string deadline = "the request deadline of " + seconds_text(request_deadline_s(target_)) +
                                     (target_.request_timeout_s > 0
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

    Target target_;
    std::unique_ptr<OpenAiDialect> dialect_;
    std::unique_ptr<BoundedClient> client_;  // the timed requests' one keep-alive connection
    std::unique_ptr<BoundedClient> side_;    // tokenize, metrics, version: never on the timed connection
    std::string api_key_;
};

}  // namespace kvgate
