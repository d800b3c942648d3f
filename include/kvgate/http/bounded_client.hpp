// cpp-httplib with the two bounds it lacks, for every request kvgate sends to a server.
// - A deadline for the whole request. cpp-httplib's read timeout restarts with every byte, so a
//   server that drips bytes or SSE comments (or header lines) would hold a request forever. A
//   watchdog thread stops the request at its deadline: stop() shuts the socket down, the one thing
//   cpp-httplib lets another thread do to a request in flight. Arming it wakes no thread, so
//   nothing else runs while a request is timed: the watchdog never sleeps longer than one
//   deadline, and so always wakes before the deadline of a request armed while it slept.
// - A cap on the body kept: an endless stream or error body would otherwise take all memory.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "kvgate/model/records.hpp"
#include "kvgate/model/settings.hpp"

namespace kvgate {

// The most bytes of one response body kvgate holds: a stream of max_tokens chunks or a side answer
// (/tokenize of a long prompt, /metrics) is far smaller. An error body (status >= 400) has a lower
// one: a fault message quotes its first few hundred bytes only.
inline constexpr std::size_t max_body_bytes = std::size_t{64} << 20;
inline constexpr std::size_t max_error_body_bytes = std::size_t{1} << 20;

inline std::size_t body_limit(int status) { return status >= 400 ? max_error_body_bytes : max_body_bytes; }

// "64 MiB", for messages.
inline std::string mib_text(std::size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

// Seconds as settings are written: "0.5 s", "480 s".
inline std::string seconds_text(double s) {
    std::string t = std::to_string(s);
    while (t.back() == '0') t.pop_back();
    if (t.back() == '.') t.pop_back();
    return t + " s";
}

// A plain request's answer. status 0: none came (error says why), none whole within the deadline
// (expired), or its body passed body_limit (over_limit); the body is then empty.
struct Fetched {
    int status = 0;
    std::string body;
    httplib::Error error = httplib::Error::Success;
    bool expired = false;
    bool over_limit = false;

    // No answer for a reason another try may not meet again (a connection the server was closing).
    bool unanswered() const { return status == 0 && !expired && !over_limit; }
};

class BoundedClient {
public:
    // Keep-alive, Nagle off, connect and read timeouts from `t`, and request_deadline_s(t) for
    // every request. A URL cpp-httplib cannot use is misuse: `knob` names the setting it came from.
    BoundedClient(const std::string& url, const Target& t, const std::string& knob)
        : client_(url), deadline_s_(request_deadline_s(t)) {
        if (!client_.is_valid()) throw std::invalid_argument(knob + ": '" + url + "' is not a usable URL");
        client_.set_keep_alive(true);
        client_.set_tcp_nodelay(true);
        client_.set_connection_timeout(microseconds(t.connect_timeout_s));
        client_.set_read_timeout(microseconds(t.read_timeout_s));
        watchdog_ = std::thread([this] { watch(); });
    }

    ~BoundedClient() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            quitting_ = true;
        }
        wake_.notify_all();
        watchdog_.join();
    }

    BoundedClient(const BoundedClient&) = delete;
    BoundedClient& operator=(const BoundedClient&) = delete;

    double deadline_s() const { return deadline_s_; }

    struct Sent {
        httplib::Result result;
        Clock::time_point at;  // taken once the deadline was armed, right before the request went out
        bool expired;          // the deadline stopped it (a result that came anyway still counts)
    };

    // Sends `req` under the deadline. The caller's receivers cap what they keep.
    Sent send(const httplib::Request& req) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            deadline_ = Clock::now() + span();
            expired_ = false;
        }
        const auto at = Clock::now();
        httplib::Result result = client_.send(req);
        std::lock_guard<std::mutex> lock(mutex_);
        deadline_.reset();
        return Sent{std::move(result), at, expired_};
    }

    // A request whose whole body is kept, up to body_limit of its status.
    Fetched fetch(const std::string& method, const std::string& path, const httplib::Headers& headers,
                  const std::string& body = {}) {
        httplib::Request req;
        req.method = method;
        req.path = path;
        req.headers = headers;
        if (method != "GET") {
            req.body = body;
            req.set_header("Content-Type", "application/json");
        }
        Fetched out;
        int status = 0;
        req.response_handler = [&](const httplib::Response& res) {
            status = res.status;
            return true;
        };
        req.content_receiver = [&](const char* data, std::size_t len, std::uint64_t, std::uint64_t) {
            if (out.body.size() + len > body_limit(status)) {
                out.over_limit = true;
                return false;
            }
            out.body.append(data, len);
            return true;
        };
        const Sent sent = send(req);
        if (!sent.result) {
            out.body.clear();
            out.error = sent.result.error();
            out.expired = sent.expired;
            return out;
        }
        out.status = sent.result->status;
        return out;
    }

private:
    static std::chrono::microseconds microseconds(double seconds) {
        return std::chrono::microseconds(static_cast<std::int64_t>(seconds * 1e6));
    }

    // How long one deadline is.
    Clock::duration span() const { return std::chrono::duration_cast<Clock::duration>(microseconds(deadline_s_)); }

    void watch() {
        std::unique_lock<std::mutex> lock(mutex_);
        while (!quitting_) {
            const auto now = Clock::now();
            if (deadline_ && now >= *deadline_) {
                expired_ = true;
                deadline_.reset();
                client_.stop();
            } else {
                wake_.wait_until(lock, deadline_ ? *deadline_ : now + span());
            }
        }
    }

    httplib::Client client_;
    double deadline_s_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::optional<Clock::time_point> deadline_;  // of the request in flight
    bool expired_ = false;
    bool quitting_ = false;
    std::thread watchdog_;  // started last, once everything it reads exists
};

}  // namespace kvgate
