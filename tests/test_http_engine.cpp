// HttpEngine::complete() against scripted loopback servers: the happy path's stamps and keep-alive,
// every fault kind with its message, and the API key's handling. Every server replies like vLLM:
// HTTP/1.1, Transfer-Encoding: chunked, Content-Type: text/event-stream, one event per chunk.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "kvgate/engine/llamacpp.hpp"
#include "kvgate/engine/vllm.hpp"
#include "kvgate/experiment/protocol.hpp"
#include "kvgate/http/http_engine.hpp"
#include "kvgate/model/results_json.hpp"
#include "loopback_server.hpp"

using namespace kvgate;
using namespace kvgate::test;
using std::chrono::milliseconds;

namespace {

constexpr const char* kApiKeyEnv = "KVGATE_TEST_HTTP_API_KEY";
constexpr const char* kApiKey = "sk-kvgate-test-4f1c9a";

// Every engine here carries the API key, so that every fault message is checked for it.
Settings settings_for(const std::string& url) {
    ::setenv(kApiKeyEnv, kApiKey, 1);
    Settings s;
    s.target.url = url;
    s.target.model = "test-model";
    s.target.api_key_env = kApiKeyEnv;
    // Generous: only the timeout tests wait for them, and a busy 2-core machine can starve the
    // test server's thread for a good part of a second.
    s.target.connect_timeout_s = 2;
    s.target.read_timeout_s = 2;
    return s;
}

std::string chat_chunk(const std::string& delta) {
    return wire::event(R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"test-model",)"
                       R"("choices":[{"index":0,"delta":)" +
                       delta + R"(,"logprobs":null,"finish_reason":null}]})");
}

std::string role_chunk() { return chat_chunk(R"({"role":"assistant","content":""})"); }

std::string content_chunk(const std::string& text) { return chat_chunk(R"({"content":")" + text + R"("})"); }

std::string usage_chunk() {
    return wire::event(R"({"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],)"
                       R"("usage":{"prompt_tokens":12,"total_tokens":15,"completion_tokens":3,)"
                       R"("prompt_tokens_details":{"cached_tokens":8}}})");
}

std::string done_and_end() { return wire::event("[DONE]") + wire::last_chunk(); }

// vLLM's stream for three tokens, the first one `first_token_delay` after the request was read.
// `before_first_token` runs right before that token's send(): an oracle can stamp the moment.
void stream_reply(Connection& conn, milliseconds first_token_delay,
                  const std::function<void()>& before_first_token = [] {}) {
    conn.send(wire::sse_head() + role_chunk());
    conn.pause(first_token_delay);
    before_first_token();
    conn.send(content_chunk("Hel"));
    conn.pause(milliseconds(5));
    conn.send(content_chunk("lo"));
    conn.pause(milliseconds(5));
    conn.send(content_chunk(" world"));
    conn.send(usage_chunk());
    conn.send(done_and_end());
}

// The next request the script is to answer, after answering the engine's connection check before
// each stream (GET /v1/models): the scripts below play the server's side of the streams only.
std::optional<HttpRequest> read_post(Connection& conn) {
    while (auto req = conn.read_request()) {
        if (req->method != "GET") return req;
        if (!conn.send(wire::json_response(200, "OK", R"({"object":"list","data":[]})"))) break;
    }
    return std::nullopt;
}

std::vector<HttpRequest> posts(const LoopbackServer& server) {
    std::vector<HttpRequest> out;
    for (auto& req : server.requests())
        if (req.method != "GET") out.push_back(std::move(req));
    return out;
}

// Serves `fault` to the first request and a good reply to every later one, on whichever connection
// it comes: a fault must not leave the engine unable to make the next request.
LoopbackServer::Script fault_then_reply(std::function<void(Connection&)> fault) {
    return [fault, served = 0](Connection& conn) mutable {
        while (read_post(conn)) {
            if (served++ == 0)
                fault(conn);
            else
                stream_reply(conn, milliseconds(1));
        }
    };
}

struct Timed {
    Completion completion;
    double elapsed_ms;
};

Timed timed_complete(HttpEngine& engine) {
    const auto start = Clock::now();
    Completion c = engine.complete("Say hello", 3);
    return {std::move(c), ms_between(start, Clock::now())};
}

// Says when each moment fell, for the message of a failed check.
std::string describe(const RequestStamps& s) {
    std::string out;
    const auto add = [&](const char* name, const std::optional<double>& ms) {
        out += std::string(name) + "=" + (ms ? std::to_string(*ms) : "none") + " ";
    };
    add("headers", s.headers_ms);
    add("first_byte", s.first_byte_ms);
    add("first_event", s.first_event_ms);
    add("first_token", s.first_token_ms);
    add("last_token", s.last_token_ms);
    add("done", s.done_ms);
    return out;
}

void check_fault(const Completion& c, const std::string& kind, const std::string& stage) {
    REQUIRE(c.fault);
    INFO("fault message: " << c.fault->message);
    INFO("stamps (ms): " << describe(c.record.stamps));
    CHECK(to_string(c.fault->kind) == kind);
    CHECK(to_string(c.fault->stage) == stage);
    CHECK_FALSE(c.fault->message.empty());
    CHECK_THAT(c.fault->message, !Catch::Contains(kApiKey));
}

void check_next_request_succeeds(HttpEngine& engine) {
    const auto next = engine.complete("Say hello again", 3);
    INFO("fault message: " << (next.fault ? next.fault->message : ""));
    CHECK_FALSE(next.fault);
    CHECK(next.record.stamps.first_token_ms);
}

// A port nothing listens on: bound to reserve a free number, then released.
int closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// A listener whose accept queue (backlog 0: one slot) is already full: the kernel drops further
// SYNs, so a connect is neither accepted nor refused until the client's own deadline. Stands in
// for an unroutable address (10.255.255.1), to which this sandbox connects at once.
struct FullBacklogListener {
    int listen_fd = -1, filler_fd = -1, port = 0;

    FullBacklogListener() {
        listen_fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        REQUIRE(::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(listen_fd, 0) == 0);
        REQUIRE(::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port = ntohs(addr.sin_port);
        filler_fd = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(::connect(filler_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }
    ~FullBacklogListener() {
        ::close(filler_fd);
        ::close(listen_fd);
    }
};

}  // namespace

TEST_CASE("HttpEngine: a streamed reply is stamped in order, TTFT is the server's delay, one connection",
          "[http]") {
    const auto first_token_delay = milliseconds(30);
    // When the server read each request and sent its first token, on the same clock as the engine.
    struct ServerMoments {
        Clock::time_point request_read, first_token_sent;
    };
    std::mutex moments_mutex;
    std::vector<ServerMoments> moments;
    LoopbackServer server([&](Connection& conn) {
        while (read_post(conn)) {
            const auto request_read = Clock::now();
            stream_reply(conn, first_token_delay, [&] {
                std::lock_guard<std::mutex> lock(moments_mutex);
                moments.push_back({request_read, Clock::now()});
            });
        }
    });
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());

    for (int request = 0; request < 2; ++request) {
        INFO("request " << request);
        const auto before_call = Clock::now();
        const auto c = engine.complete("Say hello", 3);
        INFO("fault message: " << (c.fault ? c.fault->message : ""));
        INFO("stamps (ms): " << describe(c.record.stamps));
        REQUIRE_FALSE(c.fault);
        const auto& s = c.record.stamps;
        REQUIRE(s.headers_ms);
        REQUIRE(s.first_byte_ms);
        REQUIRE(s.first_event_ms);
        REQUIRE(s.first_token_ms);
        REQUIRE(s.last_token_ms);
        REQUIRE(s.done_ms);
        CHECK(*s.headers_ms <= *s.first_byte_ms);
        CHECK(*s.first_byte_ms <= *s.first_event_ms);
        CHECK(*s.first_event_ms <= *s.first_token_ms);
        CHECK(*s.last_token_ms <= *s.done_ms);
        CHECK(*s.first_token_ms >= first_token_delay.count());
        ServerMoments server_side;
        {
            std::lock_guard<std::mutex> lock(moments_mutex);
            REQUIRE(moments.size() == static_cast<std::size_t>(request) + 1);
            server_side = moments.back();
        }
        // The engine's clock starts before the server reads the request, so TTFT covers at least the
        // server's actual wait: the role chunk, sent before it, did not stamp the first token.
        CHECK(*s.first_token_ms >= ms_between(server_side.request_read, server_side.first_token_sent));
        // The stamp is the arrival of the first token: within 20 ms of its send (about 0.1 ms on an
        // idle machine). Measured against the send, not the nominal delay, so that the test server
        // waking late on a busy CPU is not charged to the engine. `before_call` precedes the engine's
        // own start by microseconds.
        const double arrival_after_send_ms =
            *s.first_token_ms - ms_between(before_call, server_side.first_token_sent);
        CHECK(arrival_after_send_ms < 20);
        CHECK(*s.last_token_ms > *s.first_token_ms);  // stamped by the third content chunk, not the first
        CHECK(c.record.usage.prompt_tokens == 12);
        CHECK(c.record.usage.completion_tokens == 3);
        CHECK(c.record.usage.cached_tokens == 8);
    }
    // Keep-alive: a TCP connect inside the second request's TTFT would bias every measurement.
    CHECK(server.accepts() == 1);

    const auto requests = posts(server);
    REQUIRE(requests.size() == 2);
    const auto& req = requests[1];
    CHECK(req.method == "POST");
    CHECK(req.path == "/v1/chat/completions");
    CHECK(req.header("content-type") == "application/json");
    CHECK(req.header("accept") == "text/event-stream");
    const auto body = nlohmann::json::parse(req.body);
    CHECK(body["model"] == "test-model");
    CHECK(body["stream"] == true);
    CHECK(body["stream_options"]["include_usage"] == true);
    CHECK(body["max_tokens"] == 3);
    CHECK(body["messages"][0]["content"] == "Say hello");
}

TEST_CASE("HttpEngine: the completions endpoint posts a prompt and counts 'text' as tokens", "[http]") {
    LoopbackServer server([](Connection& conn) {
        while (read_post(conn)) {
            conn.send(wire::sse_head());
            conn.send(wire::event(R"({"object":"text_completion","choices":[{"index":0,"text":"Hi"}]})"));
            conn.send(done_and_end());
        }
    });
    auto settings = settings_for(server.url());
    settings.target.endpoint = Endpoint::completions;
    HttpEngine engine(settings.target, std::make_unique<vllm::Dialect>());
    const auto c = engine.complete("Once upon", 1);
    INFO("fault message: " << (c.fault ? c.fault->message : ""));
    CHECK_FALSE(c.fault);
    CHECK(c.record.stamps.first_token_ms);
    const auto requests = posts(server);
    REQUIRE(requests.size() == 1);
    CHECK(requests[0].path == "/v1/completions");
    CHECK(nlohmann::json::parse(requests[0].body)["prompt"] == "Once upon");
}

TEST_CASE("HttpEngine: a conversation is posted as separate chat messages and the completions endpoint refuses it",
          "[http]") {
    LoopbackServer server([](Connection& conn) {
        while (read_post(conn)) {
            conn.send(wire::sse_head());
            conn.send(wire::event(R"({"choices":[{"index":0,"delta":{"content":"Hi"}}]})"));
            conn.send(done_and_end());
        }
    });
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    REQUIRE(engine.takes_messages());
    const auto c = engine.complete_messages({{Role::system, "sys"}, {Role::user, "q"}, {Role::assistant, "a"}}, 1);
    INFO("fault message: " << (c.fault ? c.fault->message : ""));
    CHECK_FALSE(c.fault);
    const auto requests = posts(server);
    REQUIRE(requests.size() == 1);
    const auto body = nlohmann::json::parse(requests[0].body);
    REQUIRE(body["messages"].size() == 3);
    CHECK(body["messages"][2]["role"] == "assistant");
    CHECK(body["messages"][2]["content"] == "a");
    CHECK(body["max_tokens"] == 1);

    auto settings = settings_for(server.url());
    settings.target.endpoint = Endpoint::completions;
    HttpEngine completions(settings.target, std::make_unique<vllm::Dialect>());
    CHECK_FALSE(completions.takes_messages());
    CHECK_THROWS_WITH(completions.complete_messages({{Role::user, "q"}}, 1), Catch::Contains("--endpoint chat"));
}

TEST_CASE("HttpEngine: the API key from the named variable is sent as a Bearer token, and only then", "[http]") {
    LoopbackServer server([](Connection& conn) {
        while (read_post(conn)) stream_reply(conn, milliseconds(1));
    });
    {
        HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
        CHECK_FALSE(engine.complete("Say hello", 3).fault);
    }
    {
        auto settings = settings_for(server.url());
        settings.target.api_key_env = "KVGATE_TEST_HTTP_UNSET_KEY";
        ::unsetenv(settings.target.api_key_env.c_str());
        HttpEngine engine(settings.target, std::make_unique<vllm::Dialect>());
        CHECK_FALSE(engine.complete("Say hello", 3).fault);
    }
    const auto requests = server.requests();  // each engine's connection check, then its stream
    REQUIRE(requests.size() == 4);
    for (int i = 0; i < 2; ++i) CHECK(requests[i].header("authorization") == std::string("Bearer ") + kApiKey);
    for (int i = 2; i < 4; ++i) CHECK(requests[i].headers.count("authorization") == 0);
}

TEST_CASE("HttpEngine: a server that echoes the key in its error does not leak it into the fault", "[http]") {
    LoopbackServer server([](Connection& conn) {
        while (auto req = read_post(conn))
            conn.send(wire::json_response(401, "Unauthorized",
                                          R"({"error":{"message":"Incorrect API key provided: )" +
                                              req->header("authorization") + R"(","code":401}})"));
    });
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto c = engine.complete("Say hello", 3);
    check_fault(c, "http_status", "headers");
    CHECK_THAT(c.fault->message, Catch::Contains("Incorrect API key provided"));
}

TEST_CASE("HttpEngine: connection refused", "[http]") {
    const std::string url = "http://127.0.0.1:" + std::to_string(closed_port());
    HttpEngine engine(settings_for(url).target, std::make_unique<vllm::Dialect>());
    const auto [c, elapsed_ms] = timed_complete(engine);
    check_fault(c, "connection_refused", "connect");
    CHECK_THAT(c.fault->message, Catch::Contains(url));
    CHECK(elapsed_ms < 1000);  // at once, not after a 2 s timeout
}

TEST_CASE("HttpEngine: connect timeout", "[http]") {
    FullBacklogListener listener;
    const std::string url = "http://127.0.0.1:" + std::to_string(listener.port);
    auto settings = settings_for(url);
    settings.target.connect_timeout_s = 0.2;
    HttpEngine engine(settings.target, std::make_unique<vllm::Dialect>());
    const auto [c, elapsed_ms] = timed_complete(engine);
    check_fault(c, "connect_timeout", "connect");
    CHECK_THAT(c.fault->message, Catch::Contains(url) && Catch::Contains("0.2"));
    CHECK(elapsed_ms >= 190);
    CHECK(elapsed_ms < 1000);
}

TEST_CASE("HttpEngine: read timeout before the headers", "[http]") {
    LoopbackServer server(fault_then_reply([](Connection& conn) { conn.wait_for_close(); }));
    auto settings = settings_for(server.url());
    settings.target.read_timeout_s = 0.3;
    HttpEngine engine(settings.target, std::make_unique<vllm::Dialect>());
    const auto [c, elapsed_ms] = timed_complete(engine);
    check_fault(c, "read_timeout_before_headers", "headers");
    CHECK_THAT(c.fault->message, Catch::Contains(server.url()) && Catch::Contains("read timeout"));
    CHECK_FALSE(c.record.stamps.headers_ms);
    CHECK(elapsed_ms >= 290);
    CHECK(elapsed_ms < 1500);
    check_next_request_succeeds(engine);
}

TEST_CASE("HttpEngine: connection closed before the headers", "[http]") {
    LoopbackServer server([](Connection& conn) {
        // Closes every connection it reads a request on: the reply never starts.
        read_post(conn);
    });
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto [c, elapsed_ms] = timed_complete(engine);
    check_fault(c, "closed_before_headers", "headers");
    CHECK_THAT(c.fault->message, Catch::Contains(server.url()));
    CHECK(elapsed_ms < 1000);  // at once, not after a 2 s timeout
}

TEST_CASE("HttpEngine: a stream that stalls after its first chunk", "[http]") {
    LoopbackServer server(fault_then_reply([](Connection& conn) {
        conn.send(wire::sse_head() + role_chunk());
        conn.wait_for_close();
    }));
    auto settings = settings_for(server.url());
    settings.target.read_timeout_s = 0.3;
    HttpEngine engine(settings.target, std::make_unique<vllm::Dialect>());
    const auto [c, elapsed_ms] = timed_complete(engine);
    check_fault(c, "stalled_mid_stream", "stream");
    CHECK_THAT(c.fault->message, Catch::Contains(server.url()) && Catch::Contains("stalled"));
    CHECK(c.record.stamps.first_event_ms);
    CHECK_FALSE(c.record.stamps.first_token_ms);
    CHECK(elapsed_ms >= 290);
    CHECK(elapsed_ms < 1500);
    check_next_request_succeeds(engine);
    CHECK(server.accepts() == 2);  // the stalled connection was dropped, not reused
}

TEST_CASE("HttpEngine: a connection closed inside a chunk", "[http]") {
    LoopbackServer server(fault_then_reply([](Connection& conn) {
        conn.send(wire::sse_head() + role_chunk() + content_chunk("Hel"));
        conn.send("40\r\ndata: {\"choi");  // promises 64 bytes, sends 15
        conn.close();
    }));
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto [c, elapsed_ms] = timed_complete(engine);
    check_fault(c, "closed_mid_stream", "stream");
    CHECK_THAT(c.fault->message, Catch::Contains(server.url()) && Catch::Contains("closed"));
    CHECK(c.record.stamps.first_token_ms);  // what arrived before the cut still counts
    CHECK(elapsed_ms < 1000);  // at once, not after a 2 s timeout
    check_next_request_succeeds(engine);
}

TEST_CASE("HttpEngine: a close after a stream longer than the read timeout is a close, not a stall",
          "[http]") {
    LoopbackServer server(fault_then_reply([](Connection& conn) {
        conn.send(wire::sse_head() + role_chunk());
        for (int i = 0; i < 5; ++i) {
            conn.pause(milliseconds(100));
            conn.send(content_chunk("tok"));
        }
        conn.send("40\r\ndata: {\"choi");
        conn.close();
    }));
    auto settings = settings_for(server.url());
    settings.target.read_timeout_s = 0.3;
    HttpEngine engine(settings.target, std::make_unique<vllm::Dialect>());
    const auto [c, elapsed_ms] = timed_complete(engine);
    check_fault(c, "closed_mid_stream", "stream");
    CHECK(elapsed_ms >= 500);
    check_next_request_succeeds(engine);
}

TEST_CASE("HttpEngine: a chunked stream that ends inside an event", "[http]") {
    LoopbackServer server(fault_then_reply([](Connection& conn) {
        conn.send(wire::sse_head() + role_chunk() + content_chunk("Hel"));
        conn.send(wire::chunk("data: {\"choi") + wire::last_chunk());
    }));
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto c = engine.complete("Say hello", 3);
    check_fault(c, "closed_mid_stream", "stream");
    CHECK_THAT(c.fault->message, Catch::Contains("inside an event"));
    check_next_request_succeeds(engine);
}

TEST_CASE("HttpEngine: HTTP error statuses carry the status and the server's own message", "[http]") {
    struct Case {
        int status;
        std::string reply, server_message;
    };
    const std::string context_error =
        "This model's maximum context length is 2048 tokens. However, you requested 4096 tokens.";
    const std::vector<Case> cases = {
        // vLLM's validation error: a flat error object, sent with Content-Length
        {400,
         wire::json_response(400, "Bad Request",
                             R"({"object":"error","message":")" + context_error +
                                 R"(","type":"BadRequestError","param":null,"code":400})"),
         context_error},
        // vLLM with --api-key: the error is a bare string
        {401, wire::json_response(401, "Unauthorized", R"({"error":"Unauthorized"})"), "Unauthorized"},
        // OpenAI-style nested error, sent chunked
        {500,
         "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
             wire::chunk(R"({"error":{"message":"EngineCore encountered an issue",)") +
             wire::chunk(R"("type":"InternalServerError","code":500}})") + wire::last_chunk(),
         "EngineCore encountered an issue"},
    };
    for (const auto& test : cases) {
        INFO("status " << test.status);
        LoopbackServer server(fault_then_reply([&](Connection& conn) { conn.send(test.reply); }));
        HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
        const auto c = engine.complete("Say hello", 3);
        check_fault(c, "http_status", "headers");
        CHECK_THAT(c.fault->message, Catch::Contains("HTTP " + std::to_string(test.status)) &&
                                         Catch::Contains(test.server_message) && Catch::Contains(server.url()));
        check_next_request_succeeds(engine);
    }
}

TEST_CASE("HttpEngine: an error event mid-stream", "[http]") {
    LoopbackServer server(fault_then_reply([](Connection& conn) {
        conn.send(wire::sse_head() + role_chunk() + content_chunk("Hel"));
        conn.send(wire::event(R"({"error":{"object":"error","message":"Sampling failed: NaN in logits",)"
                              R"("type":"InternalServerError","param":null,"code":500}})"));
        conn.send(done_and_end());
    }));
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto c = engine.complete("Say hello", 3);
    check_fault(c, "error_event", "stream");
    CHECK_THAT(c.fault->message, Catch::Contains("Sampling failed: NaN in logits"));
    check_next_request_succeeds(engine);
}

TEST_CASE("HttpEngine: a malformed chunk", "[http]") {
    LoopbackServer server(fault_then_reply([](Connection& conn) {
        conn.send(wire::sse_head() + role_chunk());
        conn.send(wire::event("<html>502 Bad Gateway</html>"));
        conn.send(done_and_end());
    }));
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto c = engine.complete("Say hello", 3);
    check_fault(c, "malformed_chunk", "stream");
    CHECK_THAT(c.fault->message, Catch::Contains("<html>502 Bad Gateway</html>"));
    check_next_request_succeeds(engine);
}

TEST_CASE("HttpEngine: a stream that ends without [DONE]", "[http]") {
    LoopbackServer server(fault_then_reply([](Connection& conn) {
        conn.send(wire::sse_head() + role_chunk() + content_chunk("Hi") + usage_chunk() + wire::last_chunk());
    }));
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto c = engine.complete("Say hello", 3);
    check_fault(c, "no_done", "stream");
    CHECK_THAT(c.fault->message, Catch::Contains("[DONE]") && Catch::Contains(server.url()));
    CHECK(c.record.stamps.first_token_ms);
    check_next_request_succeeds(engine);
}

TEST_CASE("HttpEngine: a stream with no generated token", "[http]") {
    LoopbackServer server(fault_then_reply([](Connection& conn) {
        conn.send(wire::sse_head() + role_chunk() + usage_chunk() + done_and_end());
    }));
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto c = engine.complete("Say hello", 3);
    check_fault(c, "no_tokens", "stream");
    check_next_request_succeeds(engine);
}

// A reply that closes its connection, so that the side connection and the timed one (served one at
// a time by the loopback server) take turns.
std::string closing_reply(int status, const std::string& reason, const std::string& body) {
    return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: text/plain\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

TEST_CASE("HttpEngine: an error body with invalid UTF-8 still leaves a valid results file", "[http][utf8]") {
    const std::string body = "upstream exploded: \xFF\xFE at the end";
    LoopbackServer server([&](Connection& conn) {
        if (const auto req = conn.read_request())
            conn.send(req->path == "/v1/models" ? closing_reply(200, "OK", R"({"object":"list","data":[]})")
                                                : closing_reply(500, "Internal Server Error", body));
        conn.close();
    });
    Settings s = settings_for(server.url());
    s.hit_miss.trials = 2;
    s.hit_miss.warmup = 0;
    s.hit_miss.settle_ms = 0;
    s.seed = 7;
    HttpEngine engine(s.target, std::make_unique<vllm::Dialect>());
    const PhaseResult r = run_phase(engine, s, phase_descriptor("phase1"));
    REQUIRE(r.fault);
    CHECK(r.fault->kind == FaultKind::http_status);
    const auto path = std::filesystem::temp_directory_path() /
                      ("kvgate-utf8-" + std::to_string(::getpid()) + "-results_phase1.json");
    REQUIRE_NOTHROW(write_results(r, path));
    std::ifstream in(path);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::filesystem::remove(path);
    const auto doc = nlohmann::json::parse(text, nullptr, false);
    REQUIRE_FALSE(doc.is_discarded());
    const std::string message = doc["fault"]["message"].get<std::string>();
    CHECK_THAT(message, Catch::Contains("upstream exploded: \xEF\xBF\xBD\xEF\xBF\xBD at the end"));
}

TEST_CASE("HttpEngine: the API key is masked before the server's words are cut, so no prefix leaks", "[http][utf8]") {
    // The key straddles the 500-byte cut of an error body.
    const std::string body = std::string(490, 'x') + kApiKey + " rejected";
    LoopbackServer server(fault_then_reply([&](Connection& conn) { conn.send(closing_reply(401, "Unauthorized", body)); }));
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto c = engine.complete("Say hello", 3);
    check_fault(c, "http_status", "headers");
    CHECK_THAT(c.fault->message, !Catch::Contains(std::string(kApiKey).substr(0, 6)));
    CHECK_THAT(c.fault->message, Catch::Contains("xxx***"));
}

TEST_CASE("HttpEngine: a first token without text is still the first token, and stamps TTFT", "[http][empty_token]") {
    // vLLM sends a token whose text is empty (a special token, one byte of a character) as
    // `"content": ""`; the role-only chunk before it is no token.
    LoopbackServer server([](Connection& conn) {
        while (read_post(conn)) {
            conn.send(wire::sse_head() + role_chunk());
            conn.pause(milliseconds(60));
            conn.send(chat_chunk(R"({"content":""})"));
            conn.pause(milliseconds(60));
            conn.send(content_chunk("Hi"));
            conn.send(usage_chunk());
            conn.send(done_and_end());
        }
    });
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto c = engine.complete("Say hello", 2);
    INFO("fault: " << (c.fault ? c.fault->message : "none") << "; stamps (ms): " << describe(c.record.stamps));
    REQUIRE_FALSE(c.fault);
    REQUIRE(c.record.stamps.first_token_ms);
    REQUIRE(c.record.stamps.first_event_ms);
    CHECK(*c.record.stamps.first_token_ms >= 55);   // not the role chunk...
    CHECK(*c.record.stamps.first_token_ms < 115);   // ...and not the first token with text
    CHECK(*c.record.stamps.first_event_ms < 55);
}

TEST_CASE("HttpEngine: a one-token reply whose token has no text completes", "[http][empty_token]") {
    LoopbackServer server([](Connection& conn) {
        while (read_post(conn))
            conn.send(wire::sse_head() + role_chunk() + chat_chunk(R"({"content":""})") + usage_chunk() + done_and_end());
    });
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto c = engine.complete("Say hello", 1);
    INFO("fault: " << (c.fault ? c.fault->message : "none"));
    CHECK_FALSE(c.fault);
    CHECK(c.record.stamps.first_token_ms);
}

TEST_CASE("HttpEngine: a settle longer than the server's keep-alive does not reconnect inside the timed request",
          "[http][keepalive]") {
    struct Seen {
        std::string method;
        bool first_on_connection;
    };
    std::mutex mutex;
    std::vector<Seen> seen;
    // Closes a connection idle for 300 ms, as vLLM (uvicorn) does after 5 s.
    LoopbackServer server([&](Connection& conn) {
        bool first = true;
        while (auto req = conn.read_request(milliseconds(300))) {
            {
                std::lock_guard<std::mutex> lock(mutex);
                seen.push_back({req->method, first});
            }
            first = false;
            if (req->method == "GET")
                conn.send(wire::json_response(200, "OK", R"({"object":"list","data":[]})"));
            else
                stream_reply(conn, milliseconds(1));
        }
    });
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    REQUIRE_FALSE(engine.complete("warm", 1).fault);
    std::this_thread::sleep_for(milliseconds(600));  // the settle: the server closes the idle connection
    const auto timed = engine.complete("Say hello", 3);
    REQUIRE_FALSE(timed.fault);
    std::lock_guard<std::mutex> lock(mutex);
    REQUIRE(seen.size() == 4);  // GET, warm POST, GET, timed POST
    CHECK(seen[2].method == "GET");
    CHECK(seen[2].first_on_connection);  // the reconnect happened here...
    CHECK(seen[3].method == "POST");
    CHECK_FALSE(seen[3].first_on_connection);  // ...not inside the timed request
    CHECK(server.accepts() == 2);
}

TEST_CASE("HttpEngine: a side request on a connection the server is closing is sent again", "[http][keepalive]") {
    // The server answers one side request per connection and then closes it, after reading the
    // next request: the close loses the race with that request, as a keep-alive timeout can.
    std::atomic<int> answered{0};
    LoopbackServer server([&](Connection& conn) {
        if (!conn.read_request()) return;
        ++answered;  // before the reply: the client may check the count as soon as it reads it
        conn.send(wire::json_response(200, "OK", R"({"count": 7, "max_model_len": 1024, "tokens": [1]})"));
        conn.read_request();  // never answered
    });
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    for (int i = 0; i < 3; ++i) {
        INFO("side request " << i + 1);
        CHECK(engine.count_tokens("hello") == 7);
    }
    CHECK(answered == 3);
}

TEST_CASE("HttpEngine: a server that drops the connection after every stream loses no request",
          "[http][keepalive]") {
    // llama-server announces keep-alive but closes the connection after each streamed reply. The
    // close is made to lose the race here: the next request is read before the connection drops,
    // as happens when the FIN is still in flight while the client sends.
    std::mutex mutex;
    std::vector<std::string> answered;
    LoopbackServer server([&](Connection& conn) {
        while (auto req = conn.read_request()) {
            {
                std::lock_guard<std::mutex> lock(mutex);
                answered.push_back(req->method);
            }
            if (req->method == "GET") {
                conn.send(wire::json_response(200, "OK", R"({"object":"list","data":[]})"));
                continue;
            }
            stream_reply(conn, milliseconds(1));
            conn.read_request();  // whatever comes next on this connection is never answered
            return;
        }
    });
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    for (int i = 0; i < 3; ++i) {
        const auto c = engine.complete("Say hello", 2);
        INFO("request " << i + 1 << ": " << (c.fault ? c.fault->message : "ok"));
        CHECK_FALSE(c.fault);
    }
    std::lock_guard<std::mutex> lock(mutex);
    CHECK(std::count(answered.begin(), answered.end(), "POST") == 3);
}

// ---- What the server says of itself --------------------------------------------------------------

TEST_CASE("HttpEngine: what a server says of itself is masked like its fault messages", "[http][mask]") {
    // Echoes the request's Authorization header in every string it returns.
    LoopbackServer server([](Connection& conn) {
        while (auto req = conn.read_request()) {
            const std::string echo = req->header("authorization");
            if (req->path == "/version")
                conn.send(wire::json_response(200, "OK", R"({"version":"0.9 )" + echo + R"("})"));
            else if (req->path == "/props")
                conn.send(wire::json_response(200, "OK", R"({"build_info":"b1-)" + echo + R"("})"));
            else if (req->path == "/detokenize")
                conn.send(wire::json_response(200, "OK", R"({"prompt":"text )" + echo + R"("})"));
            else
                conn.send(wire::json_response(404, "Not Found", "{}"));
        }
    });
    {  // one engine at a time: the server serves one connection at a time
        HttpEngine vllm_engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
        CHECK(vllm_engine.describe().version == "0.9 Bearer ***");
        CHECK(vllm_engine.detokenize({1, 2}) == std::optional<std::string>("text Bearer ***"));
    }
    HttpEngine llama_engine(settings_for(server.url()).target, std::make_unique<llamacpp::Dialect>());
    CHECK(llama_engine.describe().version == "llama.cpp b1-Bearer ***");
}

// ---- Bounds: a deadline for the whole request, a cap on the bytes kept ---------------------------

namespace {

// Sends `piece` every `every` for `for_at_most`; false as soon as the client has gone.
bool drip(Connection& conn, const std::string& piece, milliseconds every, milliseconds for_at_most) {
    for (const auto until = Clock::now() + for_at_most; Clock::now() < until;)
        if (!conn.send(piece) || !conn.pause(every)) return false;
    return true;
}

Settings deadline_settings(const std::string& url) {
    auto s = settings_for(url);
    s.target.read_timeout_s = 0.3;  // every drip below comes well within it
    s.target.request_timeout_s = 1;
    return s;
}

}  // namespace

TEST_CASE("HttpEngine: a stream kept alive by SSE comments ends at the request deadline", "[http][deadline]") {
    LoopbackServer server(fault_then_reply([](Connection& conn) {
        conn.send(wire::sse_head() + role_chunk());
        // Unbounded, it would last as long as the server likes: here 5 s, then a stream of no token.
        if (drip(conn, wire::chunk(": keep-alive\n\n"), milliseconds(50), milliseconds(5000))) conn.send(done_and_end());
    }));
    HttpEngine engine(deadline_settings(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto [c, elapsed_ms] = timed_complete(engine);
    check_fault(c, "stalled_mid_stream", "stream");
    CHECK_THAT(c.fault->message, Catch::Contains("did not end within the request deadline of 1 s") &&
                                     Catch::Contains(server.url()) && Catch::Contains("--request-timeout-s"));
    CHECK(c.record.stamps.first_event_ms);
    CHECK(elapsed_ms >= 950);
    CHECK(elapsed_ms < 2500);
    check_next_request_succeeds(engine);
}

TEST_CASE("HttpEngine: response headers sent a line at a time end at the request deadline", "[http][deadline]") {
    LoopbackServer server(fault_then_reply([](Connection& conn) {
        conn.send("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n");
        if (drip(conn, "X-Wait: 1\r\n", milliseconds(50), milliseconds(5000)))
            conn.send("Transfer-Encoding: chunked\r\n\r\n" + role_chunk() + content_chunk("Hi") + done_and_end());
    }));
    auto settings = deadline_settings(server.url());
    settings.target.request_timeout_s = 0;  // derived: 4 x 0.3 s
    HttpEngine engine(settings.target, std::make_unique<vllm::Dialect>());
    const auto [c, elapsed_ms] = timed_complete(engine);
    check_fault(c, "read_timeout_before_headers", "headers");
    CHECK_THAT(c.fault->message, Catch::Contains("no complete response headers within the request deadline of 1.2 s "
                                                 "(4 x the read timeout)") &&
                                     Catch::Contains("KVGATE_REQUEST_TIMEOUT_S"));
    CHECK_FALSE(c.record.stamps.headers_ms);
    CHECK(elapsed_ms >= 1150);
    CHECK(elapsed_ms < 2700);
    check_next_request_succeeds(engine);
}

TEST_CASE("HttpEngine: a side request that drips ends at the deadline, once, its value unknown", "[http][deadline]") {
    std::atomic<int> version_asked{0};
    LoopbackServer server([&](Connection& conn) {
        while (auto req = conn.read_request()) {
            if (req->path != "/version") {
                conn.send(wire::json_response(404, "Not Found", "{}"));
                continue;
            }
            ++version_asked;
            conn.send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n");
            drip(conn, " ", milliseconds(50), milliseconds(5000));
            return;
        }
    });
    HttpEngine engine(deadline_settings(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto start = Clock::now();
    const EngineInfo info = engine.describe();
    const double elapsed_ms = ms_between(start, Clock::now());
    CHECK(info.version.empty());
    CHECK(elapsed_ms >= 950);
    CHECK(elapsed_ms < 2500);
    CHECK(version_asked == 1);  // not sent again: another try would wait as long
}

TEST_CASE("HttpEngine: a run whose server keeps its streams alive with comments stops at the deadline, recorded",
          "[http][deadline]") {
    // One request per connection, so that the side connection and the timed one take turns.
    LoopbackServer server([](Connection& conn) {
        const auto req = conn.read_request();
        if (!req) return;
        if (req->path == "/v1/models") {
            conn.send(closing_reply(200, "OK", R"({"object":"list","data":[]})"));
        } else if (req->path == "/v1/chat/completions") {
            conn.send(wire::sse_head() + role_chunk());
            if (drip(conn, wire::chunk(": ping\n\n"), milliseconds(50), milliseconds(3000)))
                conn.send(content_chunk("Hi") + usage_chunk() + done_and_end());
        } else {
            conn.send(closing_reply(404, "Not Found", "{}"));
        }
        conn.close();
    });
    Settings s = deadline_settings(server.url());
    s.hit_miss.trials = 2;
    s.hit_miss.warmup = 0;
    s.hit_miss.settle_ms = 0;
    s.seed = 7;
    HttpEngine engine(s.target, std::make_unique<vllm::Dialect>());
    const PhaseResult r = run_phase(engine, s, phase_descriptor("phase1"));
    REQUIRE(r.fault);
    CHECK_FALSE(r.complete);
    CHECK_THAT(r.fault->message, Catch::StartsWith("trial 1 ") && Catch::Contains("warm request, stage stream") &&
                                     Catch::Contains("request deadline of 1 s") && Catch::Contains("--request-timeout-s"));
    const auto path = std::filesystem::temp_directory_path() /
                      ("kvgate-deadline-" + std::to_string(::getpid()) + "-results_phase1.json");
    REQUIRE_NOTHROW(write_results(r, path));
    std::ifstream in(path);
    const auto doc = nlohmann::json::parse(in, nullptr, false);
    std::filesystem::remove(path);
    REQUIRE_FALSE(doc.is_discarded());
    CHECK(doc["fault"]["stage"] == "stream");
}

TEST_CASE("HttpEngine: an endless stream is cut at the 64 MiB body limit", "[http][limits]") {
    std::atomic<bool> all_sent{false};
    LoopbackServer server(fault_then_reply([&](Connection& conn) {
        const std::string comment = wire::chunk(": " + std::string(64 * 1024, 'x') + "\n\n");
        bool sent = conn.send(wire::sse_head() + role_chunk());
        for (std::size_t total = 0; sent && total < (std::size_t{72} << 20); total += comment.size())
            sent = conn.send(comment);
        if (sent) all_sent = conn.send(content_chunk("Hi") + done_and_end());
    }));
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto c = engine.complete("Say hello", 3);
    check_fault(c, "no_done", "stream");
    CHECK_THAT(c.fault->message, Catch::Contains("passed 64 MiB without 'data: [DONE]'") &&
                                     Catch::Contains("kvgate stopped reading"));
    CHECK_FALSE(all_sent);
    check_next_request_succeeds(engine);
}

TEST_CASE("HttpEngine: an endless error body is cut at 1 MiB, and the fault still quotes the server", "[http][limits]") {
    std::atomic<bool> all_sent{false};
    LoopbackServer server(fault_then_reply([&](Connection& conn) {
        const std::string filler = wire::chunk(std::string(64 * 1024, 'x'));
        bool sent = conn.send("HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n" + wire::chunk("upstream failed: "));
        for (std::size_t total = 0; sent && total < (std::size_t{32} << 20); total += filler.size())
            sent = conn.send(filler);
        if (sent) all_sent = conn.send(wire::last_chunk());
    }));
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    const auto c = engine.complete("Say hello", 3);
    check_fault(c, "http_status", "headers");
    CHECK_THAT(c.fault->message, Catch::Contains("HTTP 500") && Catch::Contains("upstream failed: xxx") &&
                                     Catch::Contains("the error body passed 1 MiB"));
    CHECK(c.fault->message.size() < 1000);
    CHECK_FALSE(all_sent);
    check_next_request_succeeds(engine);
}

TEST_CASE("HttpEngine: a side answer past the body limit is no answer, and is not asked again", "[http][limits]") {
    std::atomic<int> metrics_asked{0};
    std::atomic<bool> all_sent{false};
    LoopbackServer server([&](Connection& conn) {
        while (auto req = conn.read_request()) {
            if (req->path != "/metrics") {
                conn.send(wire::json_response(404, "Not Found", "{}"));
                continue;
            }
            ++metrics_asked;
            // 72 MiB of comment lines, then valid counters.
            const std::string line = "# " + std::string(64 * 1024 - 3, 'x') + "\n";
            const std::string counters = "vllm:prefix_cache_queries_total 10\nvllm:prefix_cache_hits_total 5\n";
            const std::size_t lines = 72 * 16;
            bool sent = conn.send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                                  std::to_string(lines * line.size() + counters.size()) + "\r\n\r\n");
            for (std::size_t i = 0; sent && i < lines; ++i) sent = conn.send(line);
            if (!sent) return;
            all_sent = conn.send(counters);
        }
    });
    HttpEngine engine(settings_for(server.url()).target, std::make_unique<vllm::Dialect>());
    CHECK_FALSE(engine.prefix_cache_counters().available);
    CHECK_FALSE(all_sent);
    CHECK(metrics_asked == 1);
}
