// A scripted HTTP/1.1 server on 127.0.0.1 for tests. Each accepted connection runs the test's
// script, which chooses every byte, delay and close: fault tests need responses that a real server
// library would refuse to produce (a cut chunk, silence after the headers, ...).
// Connections are served one at a time on one thread; the destructor stops and joins it, waking any
// script that waits, so no test can hang on its server.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../bench/http_wire.hpp"

namespace kvgate::test {

using wire::HttpRequest;


namespace detail {

struct ServerState {
    std::mutex mutex;
    std::condition_variable wake;
    bool stopping = false;
    int accepts = 0;
    std::vector<HttpRequest> requests;

    bool stopping_now() {
        std::lock_guard<std::mutex> lock(mutex);
        return stopping;
    }
};

}  // namespace detail

// The server side of one accepted connection, as a script drives it.
class Connection {
public:
    Connection(int fd, detail::ServerState& state) : fd_(fd), state_(state) {}

    // Reads one request (head and Content-Length body) and records it; nullopt once the client
    // has closed the connection or the server is stopping.
    // `idle_limit`: also nullopt when no byte of a request arrives within it (a server's keep-alive
    // timeout; the script then returns and the connection is closed).
    std::optional<HttpRequest> read_request(std::optional<std::chrono::milliseconds> idle_limit = std::nullopt) {
        std::size_t head_end;
        if (idle_limit && buffer_.empty() && !receive(std::chrono::steady_clock::now() + *idle_limit))
            return std::nullopt;
        while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos)
            if (!receive()) return std::nullopt;
        HttpRequest req = wire::parse_head(std::string_view(buffer_).substr(0, head_end));
        const std::size_t body_begin = head_end + 4;
        const std::string length = req.header("content-length");
        const std::size_t body_size = length.empty() ? 0 : std::stoul(length);
        while (buffer_.size() < body_begin + body_size)
            if (!receive()) return std::nullopt;
        req.body = buffer_.substr(body_begin, body_size);
        buffer_.erase(0, body_begin + body_size);
        std::lock_guard<std::mutex> lock(state_.mutex);
        state_.requests.push_back(req);
        return req;
    }

    // False when the client has gone (the script may stop writing).
    bool send(std::string_view bytes) {
        while (!bytes.empty()) {
            const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) return false;
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    // Sleeps unless the server stops first; false when it stopped.
    bool pause(std::chrono::milliseconds duration) {
        std::unique_lock<std::mutex> lock(state_.mutex);
        return !state_.wake.wait_for(lock, duration, [&] { return state_.stopping; });
    }

    // Ends the connection now (FIN); the script's later reads see it closed.
    void close() {
        ::shutdown(fd_, SHUT_RDWR);
        closed_ = true;
    }

    // Says nothing until the client gives up (its timeout) or the server stops.
    void wait_for_close() {
        while (receive()) buffer_.clear();
    }

private:

    // Appends what arrives; false on close, error, stop or the deadline. Polls in short slices to
    // notice a stop.
    bool receive(std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt) {
        if (closed_) return false;
        pollfd p{fd_, POLLIN, 0};
        while (true) {
            if (state_.stopping_now()) return false;
            if (deadline && std::chrono::steady_clock::now() >= *deadline) return false;
            const int ready = ::poll(&p, 1, 20);
            if (ready < 0) return false;
            if (ready > 0) break;
        }
        char buf[4096];
        const auto n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) return false;
        buffer_.append(buf, static_cast<std::size_t>(n));
        return true;
    }

    int fd_;
    detail::ServerState& state_;
    bool closed_ = false;
    std::string buffer_;  // received, not yet consumed: the start of the next request
};

class LoopbackServer {
public:
    using Script = std::function<void(Connection&)>;

    explicit LoopbackServer(Script script) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(listen_fd_, 8) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            if (listen_fd_ >= 0) ::close(listen_fd_);
            throw std::runtime_error("loopback server: cannot listen on 127.0.0.1");
        }
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this, script = std::move(script)] { serve(script); });
    }

    ~LoopbackServer() {
        {
            std::lock_guard<std::mutex> lock(state_.mutex);
            state_.stopping = true;
        }
        state_.wake.notify_all();
        thread_.join();
        ::close(listen_fd_);
    }

    LoopbackServer(const LoopbackServer&) = delete;
    LoopbackServer& operator=(const LoopbackServer&) = delete;

    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

    // TCP connections accepted so far: 1 after several requests means keep-alive worked.
    int accepts() const {
        std::lock_guard<std::mutex> lock(state_.mutex);
        return state_.accepts;
    }

    std::vector<HttpRequest> requests() const {
        std::lock_guard<std::mutex> lock(state_.mutex);
        return state_.requests;
    }

private:
    void serve(const Script& script) {
        pollfd p{listen_fd_, POLLIN, 0};
        while (!state_.stopping_now()) {
            if (::poll(&p, 1, 20) <= 0) continue;
            const int fd = ::accept(listen_fd_, nullptr, nullptr);
            if (fd < 0) continue;
            // Without it Nagle holds a small chunk until the client's delayed ACK (~24 ms here).
            const int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            {
                std::lock_guard<std::mutex> lock(state_.mutex);
                ++state_.accepts;
            }
            Connection connection(fd, state_);
            script(connection);
            ::close(fd);
        }
    }

    mutable detail::ServerState state_;
    int listen_fd_ = -1;
    int port_ = 0;
    std::thread thread_;  // last: starts once everything it reads exists
};

}  // namespace kvgate::test
