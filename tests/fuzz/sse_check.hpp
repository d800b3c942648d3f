// The SSE fuzz check, shared by the libFuzzer target and the plain random driver.
//
// One case is a byte stream, a way to cut it into reads, and an HTTP status. It checks:
// - SseParser against reference_parse(): the same events, each one returned by the read that holds
//   the line end that dispatched it, and the same "stream ends inside an event" answer; fed whole,
//   one byte per read and in the case's reads.
// - StreamReader: the same outcome (fault, [DONE], tokens, usage, partial event, error body) in
//   every chunking, and every stamp taken at the read holding the byte that a one-byte-per-read
//   run stamped, so a stamp never moves to an earlier or later read than its event's last byte.
// A mismatch prints the case and aborts, which libFuzzer and the driver both report as a finding.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "kvgate/engine/sse.hpp"
#include "kvgate/http/http_engine.hpp"
#include "reference_sse.hpp"

namespace kvgate::fuzz {

struct Case {
    std::string_view stream;
    std::vector<std::size_t> chunk_ends;  // ascending ends of the reads; the last is stream.size()
    int status = 200;
};

// libFuzzer's bytes -> a case. The last byte t is the control: reads = t >> 2 leading lengths
// taken from the bytes just before it (0..255 each, 0 = an empty read), the rest of the stream in
// one final read; t & 3 == 3 makes the response an HTTP 500 error body. A plain stream with any
// byte appended is thus a valid input, and the fuzzer mutates the cuts like any other byte.
inline Case decode(const std::uint8_t* data, std::size_t size) {
    Case c;
    if (size == 0) {
        c.chunk_ends = {0};
        return c;
    }
    const std::uint8_t control = data[size - 1];
    c.status = (control & 3) == 3 ? 500 : 200;
    std::size_t reads = control >> 2;
    if (reads > size - 1) reads = size - 1;
    const std::uint8_t* lengths = data + size - 1 - reads;
    c.stream = std::string_view(reinterpret_cast<const char*>(data), size - 1 - reads);
    std::size_t end = 0;
    for (std::size_t i = 0; i < reads && end < c.stream.size(); ++i) {
        end = std::min(c.stream.size(), end + lengths[i]);
        c.chunk_ends.push_back(end);
    }
    if (c.chunk_ends.empty() || c.chunk_ends.back() != c.stream.size()) c.chunk_ends.push_back(c.stream.size());
    return c;
}

namespace detail {

inline std::string escaped(std::string_view s, std::size_t limit = 4000) {
    std::string out;
    for (std::size_t i = 0; i < s.size() && i < limit; ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c < 0x20 || c >= 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    if (s.size() > limit) out += "...(" + std::to_string(s.size()) + " bytes)";
    return out;
}

[[noreturn]] inline void fail(const Case& c, std::string_view chunking, const std::string& what) {
    std::ostringstream msg;
    msg << "SSE FUZZ MISMATCH (" << chunking << "): " << what << "\n  status " << c.status << ", stream \""
        << escaped(c.stream) << "\"\n  read ends:";
    for (auto e : c.chunk_ends) msg << ' ' << e;
    std::fprintf(stderr, "%s\n", msg.str().c_str());
    std::abort();
}

// Index of the read that holds byte `offset`.
inline std::size_t read_holding(const std::vector<std::size_t>& ends, std::size_t offset) {
    std::size_t i = 0;
    while (ends[i] <= offset) ++i;
    return i;
}

inline std::vector<std::size_t> one_read(std::size_t n) { return {n}; }

inline std::vector<std::size_t> byte_reads(std::size_t n) {
    std::vector<std::size_t> ends;
    for (std::size_t i = 1; i <= n; ++i) ends.push_back(i);
    if (ends.empty()) ends.push_back(0);
    return ends;
}

// ---- SseParser against the reference ----

inline void check_parser(const Case& c, const ReferenceParse& ref, const std::vector<std::size_t>& ends,
                         std::string_view chunking) {
    SseParser parser;
    std::size_t begin = 0, next = 0;
    for (std::size_t read = 0; read < ends.size(); ++read) {
        for (const auto& e : parser.feed(c.stream.substr(begin, ends[read] - begin))) {
            if (next >= ref.events.size())
                fail(c, chunking, "an extra event, data \"" + escaped(e.data, 200) + "\"");
            const auto& want = ref.events[next];
            auto differs = [&](const char* what, const std::string& got, const std::string& wanted) {
                fail(c, chunking, "event " + std::to_string(next) + ": " + what + " \"" + escaped(got) + "\", want \"" +
                                      escaped(wanted) + "\"");
            };
            if (e.event != want.type) differs("type", e.event, want.type);
            if (e.data != want.data) differs("data", e.data, want.data);
            if (e.id != want.last_event_id) differs("id", e.id, want.last_event_id);
            if (const auto r = read_holding(ends, want.dispatched_at); r != read)
                fail(c, chunking, "event " + std::to_string(next) + ": came out of read " + std::to_string(read) +
                                      ", its line end is in read " + std::to_string(r));
            ++next;
        }
        begin = ends[read];
    }
    if (next != ref.events.size())
        fail(c, chunking, std::to_string(next) + " events, want " + std::to_string(ref.events.size()));
    if (parser.has_partial_event() != ref.partial)
        fail(c, chunking, std::string("has_partial_event() is ") + (ref.partial ? "false" : "true"));
}

// ---- StreamReader: chunking must not change the outcome ----

struct ReaderOutcome {
    // Stamps as the index of the read (or byte) they were taken at.
    std::optional<std::size_t> headers, first_byte, first_event, first_token, last_token, done;
    bool stopped = false;
    std::optional<Fault> fault;
    bool partial = false;
    int token_events = 0;
    Usage usage;
    std::optional<double> engine_ttft_ms;
    std::string error_body;
};

// Read i arrives i+1 ms after the request was sent; the headers at 0 ms.
inline Clock::time_point arrival(Clock::time_point sent, std::size_t read) {
    return sent + std::chrono::milliseconds(read + 1);
}

inline std::optional<std::size_t> read_index(const std::optional<double>& ms) {
    if (!ms) return std::nullopt;
    return static_cast<std::size_t>(std::llround(*ms) - 1);
}

inline ReaderOutcome run_reader(const Case& c, const std::vector<std::size_t>& ends) {
    const Clock::time_point sent{};
    StreamReader reader;
    reader.on_headers(sent, c.status);
    std::size_t begin = 0;
    ReaderOutcome out;
    for (std::size_t read = 0; read < ends.size() && !out.stopped; ++read) {
        const auto bytes = c.stream.substr(begin, ends[read] - begin);
        begin = ends[read];
        // cpp-httplib hands over only reads that carry bytes; an empty read here would be a stamp
        // of an arrival that never happens.
        if (!bytes.empty()) out.stopped = !reader.on_bytes(arrival(sent, read), bytes.data(), bytes.size());
    }
    const auto record = reader.record(sent);
    const auto& s = record.stamps;
    if (!s.headers_ms || *s.headers_ms != 0) {
        std::fprintf(stderr, "SSE FUZZ: the headers' stamp is not the headers' arrival\n");
        std::abort();
    }
    out.first_byte = read_index(s.first_byte_ms);
    out.first_event = read_index(s.first_event_ms);
    out.first_token = read_index(s.first_token_ms);
    out.last_token = read_index(s.last_token_ms);
    out.done = read_index(s.done_ms);
    out.fault = reader.fault();
    out.partial = reader.has_partial_event();
    out.token_events = reader.token_events();
    out.usage = record.usage;
    out.engine_ttft_ms = record.engine_ttft_ms;
    out.error_body = reader.error_body();
    if (reader.done() != s.done_ms.has_value()) {
        std::fprintf(stderr, "SSE FUZZ: done() disagrees with the done stamp\n");
        std::abort();
    }
    return out;
}

inline std::string describe(const std::optional<Fault>& f) {
    if (!f) return "no fault";
    return std::string("fault ") + to_string(f->kind) + " trial " + std::to_string(f->trial) + " request '" +
           to_string(f->request) + "' stage '" + to_string(f->stage) + "' message \"" + escaped(f->message, 300) + "\"";
}

inline std::string describe(const std::optional<std::size_t>& read) {
    return read ? std::to_string(*read) : "none";
}

inline void check_reader(const Case& c, const ReaderOutcome& per_byte, const std::vector<std::size_t>& ends,
                         std::string_view chunking) {
    const auto got = run_reader(c, ends);
    auto same_read = [&](const char* name, const std::optional<std::size_t>& byte,
                         const std::optional<std::size_t>& read) {
        const std::optional<std::size_t> want = byte ? std::optional(read_holding(ends, *byte)) : std::nullopt;
        if (want != read)
            fail(c, chunking, std::string(name) + " stamped at read " + describe(read) + ", want " + describe(want));
    };
    same_read("first byte", per_byte.first_byte, got.first_byte);
    same_read("first event", per_byte.first_event, got.first_event);
    same_read("first token", per_byte.first_token, got.first_token);
    same_read("last token", per_byte.last_token, got.last_token);
    same_read("[DONE]", per_byte.done, got.done);
    if (got.fault.has_value() != per_byte.fault.has_value() ||
        (got.fault && (got.fault->kind != per_byte.fault->kind || got.fault->trial != per_byte.fault->trial ||
                       got.fault->request != per_byte.fault->request || got.fault->stage != per_byte.fault->stage ||
                       got.fault->message != per_byte.fault->message)))
        fail(c, chunking, describe(got.fault) + ", one byte per read gives " + describe(per_byte.fault));
    if (got.stopped != got.fault.has_value()) fail(c, chunking, "stopped reading without a fault, or the reverse");
    // After a fault the rest of its read went through the parser, so only a clean stream's
    // unfinished event can be compared.
    if (!got.fault && got.partial != per_byte.partial) fail(c, chunking, "has_partial_event() differs");
    if (got.token_events != per_byte.token_events)
        fail(c, chunking, std::to_string(got.token_events) + " token events, want " + std::to_string(per_byte.token_events));
    if (got.usage.prompt_tokens != per_byte.usage.prompt_tokens ||
        got.usage.completion_tokens != per_byte.usage.completion_tokens ||
        got.usage.cached_tokens != per_byte.usage.cached_tokens)
        fail(c, chunking, "usage differs");
    if (got.engine_ttft_ms.has_value() != per_byte.engine_ttft_ms.has_value() ||
        (got.engine_ttft_ms && !(*got.engine_ttft_ms == *per_byte.engine_ttft_ms)))
        fail(c, chunking, "the engine's TTFT differs");
    if (got.error_body != per_byte.error_body) fail(c, chunking, "the error body differs");
}

}  // namespace detail

inline void check(const Case& c) {
    using namespace detail;
    const auto ref = reference_parse(c.stream);
    check_parser(c, ref, one_read(c.stream.size()), "one read");
    check_parser(c, ref, byte_reads(c.stream.size()), "one byte per read");
    check_parser(c, ref, c.chunk_ends, "the case's reads");

    const auto per_byte = run_reader(c, byte_reads(c.stream.size()));
    // The one-byte run against the reference: the stamps the other runs are measured by.
    if (c.stream.empty() ? per_byte.first_byte.has_value() : per_byte.first_byte != std::size_t{0})
        fail(c, "one byte per read", "the first byte is not stamped at byte 0");
    if (c.status >= 400) {
        if (per_byte.error_body != c.stream || per_byte.first_event || per_byte.fault)
            fail(c, "one byte per read", "an error status must keep the body verbatim and parse no events");
    } else {
        const std::optional<std::size_t> first =
            ref.events.empty() ? std::nullopt : std::optional(ref.events.front().dispatched_at);
        if (per_byte.first_event != first)
            fail(c, "one byte per read", "first event stamped at byte " + describe(per_byte.first_event) +
                                              ", the reference dispatches it at " + describe(first));
        if (per_byte.done) {  // [DONE] is stamped at the line end of an event whose data is "[DONE]"
            bool found = false;
            for (const auto& e : ref.events) found |= e.dispatched_at == *per_byte.done && e.data == "[DONE]";
            if (!found) fail(c, "one byte per read", "[DONE] stamped where no [DONE] event ends");
        }
        if (!per_byte.fault && per_byte.partial != ref.partial)
            fail(c, "one byte per read", "the reader's has_partial_event() differs from the reference's");
    }
    check_reader(c, per_byte, one_read(c.stream.size()), "one read");
    check_reader(c, per_byte, c.chunk_ends, "the case's reads");
}

}  // namespace kvgate::fuzz
