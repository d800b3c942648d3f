// HttpEngine::complete()'s request path, statement for statement (client options, request, stamps
// in the same callbacks, StreamReader), keeping the one thing HttpEngine keeps to itself: the
// absolute `sent` instant, without which a stamp cannot be set against the oracle's.
// kvgate_ttft_fidelity runs the shipped engine beside it to check that the copy times alike.
//
// Parsing::after_stream is a proposed change, measured here before it goes into HttpEngine:
// cpp-httplib hands the receiver one HTTP chunk per call, so parsing inside the call delays the
// stamp of the next chunk of the same read (vLLM's role chunk arrives with the first token).
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kvgate/http_engine.hpp"

namespace kvgate::bench {

class KvgateRequestPath {
public:
    enum class Parsing {
        during_stream,  // as shipped: StreamReader parses in the receiver call
        after_stream,   // the receiver only keeps bytes and their arrival; StreamReader replays them
    };

    explicit KvgateRequestPath(const Settings& s, Parsing parsing = Parsing::during_stream)
        : client_(s.url), parsing_(parsing) {
        const auto us = [](double seconds) {
            return std::chrono::microseconds(static_cast<std::int64_t>(seconds * 1e6));
        };
        client_.set_keep_alive(true);
        client_.set_tcp_nodelay(true);
        client_.set_connection_timeout(us(s.connect_timeout_s));
        client_.set_read_timeout(us(s.read_timeout_s));
        body_ = nlohmann::json{{"model", s.model},
                               {"max_tokens", 0},
                               {"temperature", 0},
                               {"stream", true},
                               {"stream_options", {{"include_usage", true}}},
                               {"ignore_eos", true}};
    }

    struct Timed {
        Clock::time_point sent;
        RequestRecord record;
    };

    Timed complete(const std::string& prompt, int max_tokens) {
        httplib::Request req;
        req.method = "POST";
        req.path = "/v1/chat/completions";
        req.headers.emplace("Accept", "text/event-stream");
        auto body = body_;
        body["max_tokens"] = max_tokens;
        body["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", prompt}}});
        req.body = body.dump();
        req.set_header("Content-Type", "application/json");

        StreamReader reader;
        std::vector<std::pair<Clock::time_point, std::string>> arrived;
        req.response_handler = [&](const httplib::Response& res) {
            reader.on_headers(Clock::now(), res.status);
            return true;
        };
        req.content_receiver = [&](const char* data, std::size_t len, std::uint64_t, std::uint64_t) {
            if (parsing_ == Parsing::during_stream) return reader.on_bytes(Clock::now(), data, len);
            arrived.emplace_back(Clock::now(), std::string(data, len));
            return true;
        };
        const auto sent = Clock::now();
        auto res = client_.send(req);
        for (const auto& [at, bytes] : arrived)
            if (!reader.on_bytes(at, bytes.data(), bytes.size())) break;
        if (!res || reader.fault() || !reader.done() || reader.token_events() == 0)
            throw std::runtime_error("kvgate request path: the oracle's stream did not complete");
        return {sent, reader.record(sent)};
    }

private:
    httplib::Client client_;
    Parsing parsing_;
    nlohmann::json body_;
};

}  // namespace kvgate::bench
