// HTTP/1.1 on the wire for kvgate's loopback servers (the benchmark's oracle and the unit tests'
// scripted server): a request head parsed, and responses written the way vLLM's server writes them.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>

namespace kvgate::wire {

struct HttpRequest {
    std::string method, path, body;
    std::map<std::string, std::string> headers;  // names lower-cased

    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string{} : it->second;
    }
};

inline HttpRequest parse_head(std::string_view head) {
    HttpRequest req;
    const auto first_eol = std::min(head.find("\r\n"), head.size());
    const std::string_view request_line = head.substr(0, first_eol);
    const auto sp1 = request_line.find(' ');
    const auto sp2 = request_line.find(' ', sp1 == std::string_view::npos ? sp1 : sp1 + 1);
    req.method = std::string(request_line.substr(0, sp1));
    if (sp1 != std::string_view::npos) req.path = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
    head.remove_prefix(std::min(first_eol + 2, head.size()));
    while (!head.empty()) {
        const auto eol = std::min(head.find("\r\n"), head.size());
        const std::string_view line = head.substr(0, eol);
        head.remove_prefix(std::min(eol + 2, head.size()));
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string name(line.substr(0, colon));
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        req.headers[name] = std::string(value);
    }
    return req;
}

inline std::string sse_head() {
    return "HTTP/1.1 200 OK\r\n"
           "Content-Type: text/event-stream; charset=utf-8\r\n"
           "Transfer-Encoding: chunked\r\n"
           "\r\n";
}

inline std::string chunk(std::string_view payload) {
    char size[20];
    std::snprintf(size, sizeof size, "%zx\r\n", payload.size());
    return size + std::string(payload) + "\r\n";
}

// One SSE event in one chunk, as vLLM flushes them.
inline std::string event(std::string_view data) { return chunk("data: " + std::string(data) + "\n\n"); }

inline std::string last_chunk() { return "0\r\n\r\n"; }

inline std::string json_response(int status, std::string_view reason, std::string_view body) {
    return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
           std::string(body);
}

}  // namespace kvgate::wire
