// The oracle: a loopback OpenAI-compatible streaming server that knows when it sent each first
// token. A client's first-token stamp is judged against it.
//
// Serves POST /v1/chat/completions and /v1/completions as vLLM does on the wire: HTTP/1.1
// keep-alive, `Transfer-Encoding: chunked`, one SSE event per chunk (chat: a role-only chunk with
// empty content, then content chunks, then a usage chunk, then `data: [DONE]`). GET /oracle/log
// returns the per-request record as JSON.
//
// Clock: std::chrono::steady_clock, which libstdc++ reads with clock_gettime(CLOCK_MONOTONIC); that
// clock is system-wide, so kvgate's Clock (same process) and Python's time.monotonic_ns() (another
// process; also CLOCK_MONOTONIC, see time.get_clock_info) can be compared with it directly.
//
// Every accepted socket has TCP_NODELAY: without it Nagle holds a small chunk until the client's
// delayed ACK (~24 ms here). One thread per connection, blocked in recv() or in its timed wait;
// apart from the short spin before each first token (OracleConfig::prime_us) the oracle polls
// nothing, so it wakes no vCPU a client's measurement depends on.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http_wire.hpp"

namespace kvgate::bench {

// Where the chat role chunk goes relative to the first token. vLLM yields it right before the first
// token, as its own write, a few tens of us earlier: a reader it wakes is then already awake when the
// token lands, which hides part of that reader's error. `together` (the default) hides nothing.
enum class RolePlacement {
    together,  // in the same send() as the first token
    separate,  // its own send() immediately before the first token's
    early,     // with the response headers, before the first-token delay
};

inline const char* to_string(RolePlacement r) {
    switch (r) {
        case RolePlacement::together: return "together";
        case RolePlacement::separate: return "separate";
        case RolePlacement::early: return "early";
    }
    return "together";
}

inline RolePlacement role_placement_from(const std::string& name) {
    for (auto r : {RolePlacement::together, RolePlacement::separate, RolePlacement::early})
        if (name == to_string(r)) return r;
    throw std::invalid_argument("role placement '" + name + "' is none of together, separate, early");
}

struct OracleConfig {
    int first_token_delay_ms = 20;  // after the request's last byte was read
    int tokens = 4;
    int inter_token_us = 1000;
    RolePlacement role = RolePlacement::together;
    // This long before each first token, the oracle primes its send path: a byte through a private
    // loopback connection, then a spin until the token is due. On our VMs a TCP send() after an idle
    // wait takes ~40 us instead of 5-10 (measured: the kernel's path has gone cold), time that would
    // be charged to every client alike. 0: a cold path, as a server that waited idle has.
    int prime_us = 200;
};

struct OracleRecord {
    std::uint64_t seq = 0;  // order of arrival, from 0
    int connection = 0;     // order of accept, from 0
    std::string path;
    std::string request_id;                // the client's x-request-id header, if it sent one
    std::int64_t request_read_ns = 0;      // right after the recv() that completed the request
    std::int64_t first_token_ns = 0;       // right before the send() of the first token's chunk
    std::int64_t first_token_sent_ns = 0;  // right after that send() returned
};

inline std::int64_t monotonic_ns(std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now()) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

inline nlohmann::json to_json(const OracleRecord& r) {
    return {{"seq", r.seq},
            {"connection", r.connection},
            {"path", r.path},
            {"request_id", r.request_id},
            {"request_read_ns", r.request_read_ns},
            {"first_token_ns", r.first_token_ns},
            {"first_token_sent_ns", r.first_token_sent_ns}};
}

inline nlohmann::json to_json(const OracleConfig& c) {
    return {{"first_token_delay_ms", c.first_token_delay_ms},
            {"tokens", c.tokens},
            {"inter_token_us", c.inter_token_us},
            {"role", to_string(c.role)},
            {"prime_us", c.prime_us},
            {"clock", "CLOCK_MONOTONIC"}};
}

namespace oracle_detail {


// A response's bytes, cut where the oracle pauses; built before the wait so that nothing but the
// stamp lies between waking up and send().
struct Script {
    std::string head;                 // sent at once
    std::string separate_role;        // sent after the first-token delay, right before first_token
    std::string first_token;          // stamped right before its send()
    std::vector<std::string> tokens;  // the later tokens, one inter-token gap apart
    std::string tail;                 // usage, [DONE] and the last chunk, right after the last token
};

inline Script stream_script(const OracleConfig& config, bool chat, std::uint64_t seq, std::size_t prompt_bytes) {
    const std::string id = (chat ? "chatcmpl-oracle-" : "cmpl-oracle-") + std::to_string(seq);
    const std::string object = chat ? "chat.completion.chunk" : "text_completion";
    const auto choice_chunk = [&](const std::string& choice) {
        return wire::event(R"({"id":")" + id + R"(","object":")" + object + R"(","created":0,"model":"oracle",)" +
                     R"("choices":[)" + choice + "]}");
    };
    const auto token_chunk = [&](int i) {
        const std::string text = " tok" + std::to_string(i);
        const std::string finish = i + 1 == config.tokens ? R"("length")" : "null";
        return choice_chunk(chat ? R"({"index":0,"delta":{"content":")" + text +
                                       R"("},"logprobs":null,"finish_reason":)" + finish + "}"
                                 : R"({"index":0,"text":")" + text + R"(","logprobs":null,"finish_reason":)" +
                                       finish + "}");
    };
    const std::string role =
        chat ? choice_chunk(R"({"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,)"
                            R"("finish_reason":null})")
             : std::string{};

    Script s;
    s.head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n";
    switch (config.role) {
        case RolePlacement::together: s.first_token = role; break;
        case RolePlacement::separate: s.separate_role = role; break;
        case RolePlacement::early: s.head += role; break;
    }
    s.first_token += token_chunk(0);
    for (int i = 1; i < config.tokens; ++i) s.tokens.push_back(token_chunk(i));
    const std::size_t prompt_tokens = prompt_bytes / 4 + 1;
    s.tail = wire::event(R"({"id":")" + id + R"(","object":")" + object + R"(","created":0,"model":"oracle","choices":[],)" +
                   R"("usage":{"prompt_tokens":)" + std::to_string(prompt_tokens) +
                   R"(,"completion_tokens":)" + std::to_string(config.tokens) + R"(,"total_tokens":)" +
                   std::to_string(prompt_tokens + static_cast<std::size_t>(config.tokens)) + "}}") +
             wire::event("[DONE]") + wire::last_chunk();
    return s;
}

// A loopback TCP connection to itself: exercising it runs the kernel's send path just before a
// first token is due, without a byte on any client's connection.
class LoopbackPair {
public:
    LoopbackPair() {
        const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (listener >= 0 && ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
            ::listen(listener, 1) == 0 && ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
            tx_ = ::socket(AF_INET, SOCK_STREAM, 0);
            if (tx_ >= 0 && ::connect(tx_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
                rx_ = ::accept(listener, nullptr, nullptr);
        }
        if (listener >= 0) ::close(listener);
        const int one = 1;
        if (rx_ < 0 || ::setsockopt(tx_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
            close_all();
            throw std::runtime_error("oracle: cannot open its loopback priming connection");
        }
    }
    ~LoopbackPair() { close_all(); }
    LoopbackPair(const LoopbackPair&) = delete;
    LoopbackPair& operator=(const LoopbackPair&) = delete;

    void exercise() {
        char byte = 0;
        if (::send(tx_, &byte, 1, MSG_NOSIGNAL) == 1) ::recv(rx_, &byte, 1, 0);
    }

private:
    void close_all() {
        if (tx_ >= 0) ::close(tx_);
        if (rx_ >= 0) ::close(rx_);
    }

    int tx_ = -1, rx_ = -1;
};

}  // namespace oracle_detail

class OracleServer {
public:
    // port 0: an ephemeral port (see port()).
    explicit OracleServer(OracleConfig config, std::uint16_t port = 0) : config_(config) {
        if (config.first_token_delay_ms < 0 || config.tokens < 1 || config.inter_token_us < 0 ||
            config.prime_us < 0)
            throw std::invalid_argument("oracle: delay, gap and prime time must be >= 0 and tokens >= 1");
        if (config.prime_us > 0) prime_path_.emplace();
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port);
        socklen_t len = sizeof addr;
        const int one = 1;
        if (listen_fd_ < 0 || ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(listen_fd_, 16) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            if (listen_fd_ >= 0) ::close(listen_fd_);
            throw std::runtime_error("oracle: cannot listen on 127.0.0.1:" + std::to_string(port));
        }
        port_ = ntohs(addr.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }

    // Stops: shutdown() wakes every thread blocked in accept(), recv() or send(), then joins them.
    ~OracleServer() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
            for (const auto& [connection, fd] : open_fds_) ::shutdown(fd, SHUT_RDWR);
        }
        wake_.notify_all();
        ::shutdown(listen_fd_, SHUT_RDWR);
        acceptor_.join();
        for (auto& t : connection_threads_) t.join();
        ::close(listen_fd_);
    }

    OracleServer(const OracleServer&) = delete;
    OracleServer& operator=(const OracleServer&) = delete;

    std::uint16_t port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    const OracleConfig& config() const { return config_; }

    // Streamed requests with seq >= first, in order. A request's record is stored before its last
    // send(), so it is there by the time its client has read the whole response.
    std::vector<OracleRecord> records_since(std::uint64_t first = 0) const {
        std::lock_guard<std::mutex> lock(mutex_);
        return {records_.begin() + static_cast<std::ptrdiff_t>(std::min<std::uint64_t>(first, records_.size())),
                records_.end()};
    }

    std::uint64_t request_count() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return next_seq_;
    }

    nlohmann::json log() const {
        nlohmann::json requests = nlohmann::json::array();
        for (const auto& r : records_since()) requests.push_back(to_json(r));
        return {{"config", to_json(config_)}, {"requests", requests}};
    }

private:
    void accept_loop() {
        for (int connection = 0;; ++connection) {
            const int fd = ::accept(listen_fd_, nullptr, nullptr);
            std::lock_guard<std::mutex> lock(mutex_);
            if (stopping_) {
                if (fd >= 0) ::close(fd);
                return;
            }
            if (fd < 0) continue;
            const int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            open_fds_[connection] = fd;
            connection_threads_.emplace_back([this, fd, connection] {
                serve(fd, connection);
                std::lock_guard<std::mutex> lock(mutex_);  // closed under the lock: no stale fd is shut down
                open_fds_.erase(connection);
                ::close(fd);
            });
        }
    }

    void serve(int fd, int connection) {
        std::string buffer;
        while (true) {
            std::size_t head_end;
            while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos)
                if (!receive(fd, buffer)) return;
            auto req = wire::parse_head(std::string_view(buffer).substr(0, head_end));
            const std::size_t body_begin = head_end + 4;
            // A body needs Content-Length (every client here sends one); strtoul: a bad one reads as 0.
            const std::size_t body_size = std::strtoul(req.header("content-length").c_str(), nullptr, 10);
            while (buffer.size() < body_begin + body_size)
                if (!receive(fd, buffer)) return;
            const auto read_at = std::chrono::steady_clock::now();
            req.body = buffer.substr(body_begin, body_size);
            buffer.erase(0, body_begin + body_size);

            bool ok;
            if (req.method == "POST" && (req.path == "/v1/chat/completions" || req.path == "/v1/completions"))
                ok = stream(fd, connection, req, read_at);
            else if (req.method == "GET" && req.path == "/oracle/log")
                ok = send_all(fd, wire::json_response(200, "OK", log().dump()));
            else
                ok = send_all(fd, wire::json_response(404, "Not Found",
                                                               R"({"error":{"message":"the oracle serves )"
                                                               R"(/v1/chat/completions, /v1/completions and )"
                                                               R"(/oracle/log"}})"));
            if (!ok || req.header("connection") == "close") return;
        }
    }

    bool stream(int fd, int connection, const wire::HttpRequest& req,
                std::chrono::steady_clock::time_point read_at) {
        OracleRecord record;
        record.connection = connection;
        record.path = req.path;
        record.request_id = req.header("x-request-id");
        record.request_read_ns = monotonic_ns(read_at);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            record.seq = next_seq_++;
        }
        const auto script =
            oracle_detail::stream_script(config_, req.path == "/v1/chat/completions", record.seq, req.body.size());
        if (!send_all(fd, script.head)) return false;
        const auto first_token_due = read_at + std::chrono::milliseconds(config_.first_token_delay_ms);
        if (!wait_until(first_token_due - std::chrono::microseconds(config_.prime_us))) return false;
        if (prime_path_) {
            std::lock_guard<std::mutex> lock(prime_path_mutex_);
            prime_path_->exercise();
        }
        while (std::chrono::steady_clock::now() < first_token_due) {
        }  // spinning, not sleeping: a halted vCPU would let the path go cold again
        if (!script.separate_role.empty() && !send_all(fd, script.separate_role)) return false;
        record.first_token_ns = monotonic_ns();
        if (!send_all(fd, script.first_token)) return false;
        record.first_token_sent_ns = monotonic_ns();
        for (const auto& token : script.tokens) {
            if (!wait_until(std::chrono::steady_clock::now() + std::chrono::microseconds(config_.inter_token_us)))
                return false;
            if (!send_all(fd, token)) return false;
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            records_.push_back(record);
        }
        return send_all(fd, script.tail);
    }

    // False when the oracle stopped before the deadline.
    bool wait_until(std::chrono::steady_clock::time_point deadline) {
        std::unique_lock<std::mutex> lock(mutex_);
        return !wake_.wait_until(lock, deadline, [&] { return stopping_; });
    }

    static bool receive(int fd, std::string& buffer) {
        char buf[8192];
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return false;
        buffer.append(buf, static_cast<std::size_t>(n));
        return true;
    }

    static bool send_all(int fd, std::string_view bytes) {
        while (!bytes.empty()) {
            const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) return false;
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    const OracleConfig config_;
    std::optional<oracle_detail::LoopbackPair> prime_path_;
    std::mutex prime_path_mutex_;  // connections take turns with it
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::uint64_t next_seq_ = 0;
    std::vector<OracleRecord> records_;
    std::map<int, int> open_fds_;  // connection -> socket, while its thread runs
    std::vector<std::thread> connection_threads_;
    std::thread acceptor_;  // last: starts once everything it reads exists
};

}  // namespace kvgate::bench
