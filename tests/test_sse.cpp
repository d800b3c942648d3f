// SSE parsing and stream reading, fed bytes directly: any chunking of the same bytes must give the
// same events, and only the bytes that carry a generated token may stamp the first token.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "kvgate/engine/sse.hpp"
#include "kvgate/http/stream_reader.hpp"

using namespace kvgate;

namespace {

// One string per event, so that Catch prints a whole mismatch.
std::vector<std::string> describe(const std::vector<SseEvent>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back("event=" + e.event + " id=" + e.id + " data=" + e.data);
    return out;
}

std::vector<std::string> parse_in_pieces(const std::vector<std::string>& pieces) {
    SseParser parser;
    std::vector<SseEvent> events;
    for (const auto& piece : pieces)
        for (auto& e : parser.feed(piece)) events.push_back(std::move(e));
    return describe(events);
}

std::string with_line_endings(const std::string& lf_text, const std::string& eol) {
    std::string out;
    for (char c : lf_text) out += c == '\n' ? eol : std::string(1, c);
    return out;
}

// What vLLM sends for one chat completion, with a keep-alive comment and the less common fields.
const std::string kStream =
    ": keep-alive\n"
    "\n"
    "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n"
    "\n"
    "event: note\n"
    "id: 7\n"
    "data: first line\n"
    ": a comment inside an event\n"
    "data: second line\n"
    "\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"héllo 日本\"}}]}\n"
    "\n"
    "data:{\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

const std::vector<std::string> kStreamEvents = {
    "event=message id= data={\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
    "event=note id=7 data=first line\nsecond line",
    "event=message id=7 data={\"choices\":[{\"delta\":{\"content\":\"héllo 日本\"}}]}",  // id persists, per the spec
    "event=message id=7 data={\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1}}",
    "event=message id=7 data=[DONE]",
};

}  // namespace

TEST_CASE("SseParser: a whole stream in one read gives every event in order", "[sse]") {
    CHECK(parse_in_pieces({kStream}) == kStreamEvents);
}

TEST_CASE("SseParser: the same events at every split point, in every line ending", "[sse]") {
    const std::string eol = GENERATE(as<std::string>{}, "\n", "\r\n", "\r");
    const std::string stream = with_line_endings(kStream, eol);
    INFO("line ending of " << eol.size() << " byte(s), first byte " << int(eol[0]));
    for (std::size_t split = 0; split <= stream.size(); ++split) {
        INFO("split at byte " << split);
        REQUIRE(parse_in_pieces({stream.substr(0, split), stream.substr(split)}) == kStreamEvents);
    }
    std::vector<std::string> bytes;
    for (char c : stream) bytes.emplace_back(1, c);
    CHECK(parse_in_pieces(bytes) == kStreamEvents);
}

TEST_CASE("SseParser: multi-byte UTF-8 split inside a character comes out intact", "[sse]") {
    const std::string text = "héllo 日本";
    const std::string stream = "data: " + text + "\n\n";
    for (std::size_t split = 0; split <= stream.size(); ++split) {
        INFO("split at byte " << split);
        REQUIRE(parse_in_pieces({stream.substr(0, split), stream.substr(split)}) ==
                std::vector<std::string>{"event=message id= data=" + text});
    }
}

TEST_CASE("SseParser: a CRLF split between two reads ends one line, not two", "[sse]") {
    SseParser parser;
    CHECK(parser.feed("data: a\r").empty());
    CHECK(parser.feed("\n").empty());  // a second line end here would be a blank line and dispatch
    CHECK(describe(parser.feed("\r\n")) == std::vector<std::string>{"event=message id= data=a"});
}

TEST_CASE("SseParser: a CR at the end of a read followed by a CR is a blank line", "[sse]") {
    SseParser parser;
    CHECK(parser.feed("data: a\r").empty());
    CHECK(describe(parser.feed("\r")) == std::vector<std::string>{"event=message id= data=a"});
}

TEST_CASE("SseParser: comment lines alone dispatch nothing", "[sse]") {
    CHECK(parse_in_pieces({": keep-alive\n\n", ":\n\n", ": ping\r\n\r\n"}).empty());
}

TEST_CASE("SseParser: field values with and without the space after the colon", "[sse]") {
    CHECK(parse_in_pieces({"data:x\n\n", "data: y\n\n", "data:  z\n\n", "data\n\n", "data:\n\n"}) ==
          std::vector<std::string>{
              "event=message id= data=x",
              "event=message id= data=y",
              "event=message id= data= z",  // only one space is stripped
              "event=message id= data=",    // a bare field name is an empty value
              "event=message id= data=",
          });
}

TEST_CASE("SseParser: a blank line without data dispatches nothing and resets the event type", "[sse]") {
    CHECK(parse_in_pieces({"event: ignored\n\n", "data: a\n\n"}) ==
          std::vector<std::string>{"event=message id= data=a"});
}

TEST_CASE("SseParser: has_partial_event tells a cut stream from a finished one", "[sse]") {
    SseParser parser;
    CHECK_FALSE(parser.has_partial_event());
    parser.feed("da");
    CHECK(parser.has_partial_event());  // inside a line
    parser.feed("ta: x\n");
    CHECK(parser.has_partial_event());  // data held, no blank line yet
    parser.feed("\n");
    CHECK_FALSE(parser.has_partial_event());
    parser.feed(": keep-alive\n");
    CHECK_FALSE(parser.has_partial_event());
    parser.feed("event: note\n");
    CHECK(parser.has_partial_event());
}

TEST_CASE("SseParser: a leading UTF-8 byte order mark is skipped, at every split point", "[sse]") {
    const std::string stream = "\xEF\xBB\xBF" "data: a\n\n";
    for (std::size_t split = 0; split <= stream.size(); ++split) {
        INFO("split at byte " << split);
        REQUIRE(parse_in_pieces({stream.substr(0, split), stream.substr(split)}) ==
                std::vector<std::string>{"event=message id= data=a"});
    }
    // Only a leading one: later it is part of a field name, which no field then has.
    CHECK(parse_in_pieces({"data: a\n\n\xEF\xBB\xBF" "data: b\n\n"}) == std::vector<std::string>{"event=message id= data=a"});
    SseParser parser;
    parser.feed("\xEF\xBB\xBF");
    CHECK_FALSE(parser.has_partial_event());
}

TEST_CASE("SseParser: an id holding a NUL is ignored, per the spec", "[sse]") {
    CHECK(parse_in_pieces({"id: 1\ndata: a\n\n", std::string("id: 2\0" "3\ndata: b\n\n", 17)}) ==
          std::vector<std::string>{"event=message id=1 data=a", "event=message id=1 data=b"});
}

// ---- StreamReader: bytes with arrival times -> stamps, usage, faults ----

namespace {

const Clock::time_point kSent = Clock::now();

Clock::time_point at_ms(int ms) { return kSent + std::chrono::milliseconds(ms); }

bool feed(StreamReader& reader, int ms, const std::string& bytes) {
    return reader.on_bytes(at_ms(ms), bytes.data(), bytes.size());
}

std::string sse(const std::string& data) { return "data: " + data + "\n\n"; }

std::string chat_delta(const std::string& delta) {
    return sse(R"({"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":)" + delta +
               R"(,"finish_reason":null}]})");
}

}  // namespace

TEST_CASE("StreamReader: the role chunk is an event, not a token: the content chunk stamps TTFT", "[sse]") {
    StreamReader reader;
    reader.on_headers(at_ms(1), 200);
    CHECK(feed(reader, 2, chat_delta(R"({"role":"assistant","content":""})")));
    CHECK(feed(reader, 30, chat_delta(R"({"content":"Hi"})")));
    CHECK(feed(reader, 35, chat_delta(R"({"content":" there"})")));
    CHECK(feed(reader, 36, sse("[DONE]")));

    const auto stamps = reader.record(kSent).stamps;
    CHECK(stamps.headers_ms.value_or(-1) == Approx(1));
    CHECK(stamps.first_byte_ms.value_or(-1) == Approx(2));
    CHECK(stamps.first_event_ms.value_or(-1) == Approx(2));
    CHECK(stamps.first_token_ms.value_or(-1) == Approx(30));
    CHECK(stamps.last_token_ms.value_or(-1) == Approx(35));
    CHECK(stamps.done_ms.value_or(-1) == Approx(36));
    CHECK(reader.last_arrival() == at_ms(36));
    CHECK(reader.done());
    CHECK(reader.token_events() == 2);
    CHECK_FALSE(reader.fault());
}

TEST_CASE("StreamReader: a token event split across reads is stamped when its last byte arrives", "[sse]") {
    StreamReader reader;
    reader.on_headers(at_ms(1), 200);
    const std::string event = chat_delta(R"({"content":"Hi"})");
    CHECK(feed(reader, 10, event.substr(0, 20)));
    CHECK(feed(reader, 12, event.substr(20)));
    const auto stamps = reader.record(kSent).stamps;
    CHECK(stamps.first_byte_ms.value_or(-1) == Approx(10));
    CHECK(stamps.first_token_ms.value_or(-1) == Approx(12));
}

TEST_CASE("StreamReader: which deltas carry a token", "[sse]") {
    struct Case {
        const char* what;
        std::string bytes;
        bool token;
    };
    const std::vector<Case> cases = {
        {"chat content", chat_delta(R"({"content":"a"})"), true},
        {"reasoning_content (reasoning models)", chat_delta(R"({"reasoning_content":"hmm"})"), true},
        {"reasoning (newer vLLM)", chat_delta(R"({"reasoning":"hmm"})"), true},
        {"/v1/completions text", sse(R"({"object":"text_completion","choices":[{"index":0,"text":"a"}]})"), true},
        // A token whose text is empty (a special token, one byte of a character) is still a token:
        // vLLM streams it as its own chunk (issue 10).
        {"empty content", chat_delta(R"({"content":""})"), true},
        {"empty completions text", sse(R"({"choices":[{"index":0,"text":""}]})"), true},
        {"the role chunk (empty content beside the role)", chat_delta(R"({"role":"assistant","content":""})"), false},
        {"null content", chat_delta(R"({"content":null})"), false},
        {"empty delta (a finish-only chunk)", chat_delta("{}"), false},
        {"usage-only final chunk", sse(R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}})"), false},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        StreamReader reader;
        reader.on_headers(at_ms(0), 200);
        CHECK(feed(reader, 5, c.bytes));
        CHECK(reader.record(kSent).stamps.first_token_ms.has_value() == c.token);
        CHECK(reader.token_events() == (c.token ? 1 : 0));
        CHECK_FALSE(reader.fault());
    }
}

TEST_CASE("StreamReader: the usage chunk gives prompt, completion and cached tokens", "[sse]") {
    StreamReader reader;
    reader.on_headers(at_ms(0), 200);
    CHECK(feed(reader, 5,
               sse(R"({"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":812,"total_tokens":862,)"
                   R"("completion_tokens":50,"prompt_tokens_details":{"cached_tokens":768}}})")));
    const auto record = reader.record(kSent);
    CHECK(record.usage.prompt_tokens == 812);
    CHECK(record.usage.completion_tokens == 50);
    CHECK(record.usage.cached_tokens == 768);
    CHECK_FALSE(record.engine_ttft_ms);
}

TEST_CASE("StreamReader: usage without prompt_tokens_details leaves cached tokens unknown", "[sse]") {
    StreamReader reader;
    reader.on_headers(at_ms(0), 200);
    CHECK(feed(reader, 5, sse(R"({"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":2}})")));
    CHECK(reader.record(kSent).usage.cached_tokens == -1);
}

TEST_CASE("StreamReader: a chunk that is not JSON is a malformed_chunk fault quoting it", "[sse]") {
    StreamReader reader;
    reader.on_headers(at_ms(0), 200);
    CHECK(feed(reader, 5, chat_delta(R"({"content":"a"})")));
    CHECK_FALSE(feed(reader, 6, sse("this is not json")));
    REQUIRE(reader.fault());
    CHECK(reader.fault()->kind == FaultKind::malformed_chunk);
    CHECK(reader.fault()->stage == FaultStage::stream);
    CHECK_THAT(reader.fault()->message, Catch::Contains("this is not json"));
}

TEST_CASE("StreamReader: an error event mid-stream is an error_event fault with the server's message", "[sse]") {
    StreamReader reader;
    reader.on_headers(at_ms(0), 200);
    CHECK(feed(reader, 5, chat_delta(R"({"content":"a"})")));
    CHECK_FALSE(feed(reader, 6,
                     sse(R"({"error":{"object":"error","message":"CUDA out of memory while decoding",)"
                         R"("type":"InternalServerError","param":null,"code":500}})")));
    REQUIRE(reader.fault());
    CHECK(reader.fault()->kind == FaultKind::error_event);
    CHECK_THAT(reader.fault()->message, Catch::Contains("CUDA out of memory while decoding"));
}

TEST_CASE("StreamReader: an error status keeps the body verbatim and parses no events", "[sse]") {
    StreamReader reader;
    reader.on_headers(at_ms(1), 500);
    const std::string body = R"({"error":{"message":"engine dead","code":500}})" "\n\ndata: [DONE]\n\n";
    CHECK(feed(reader, 2, body.substr(0, 10)));
    CHECK(feed(reader, 3, body.substr(10)));
    CHECK(reader.status() == 500);
    CHECK(reader.error_body() == body);
    CHECK_FALSE(reader.done());
    CHECK_FALSE(reader.fault());  // classifying the status is the engine's job
    CHECK_FALSE(reader.record(kSent).stamps.first_event_ms);
}

TEST_CASE("StreamReader: a dialect reads what its server adds to the chunks", "[sse]") {
    // As a llama.cpp-style server: no cached_tokens in usage, its own account in `timings`.
    struct TimingsDialect : OpenAiDialect {
        std::string engine_name() const override { return "timings"; }
        std::string version(const SideRequest&) const override { return {}; }
        std::optional<int> count_tokens(const SideRequest&, const std::string&, bool, const std::string&) const override {
            return std::nullopt;
        }
        MetricsView metrics(const SideRequest&) const override { return {}; }
        void ask_fixed_output(nlohmann::json&, int) const override {}
        void read_chunk(const nlohmann::json& chunk, EngineAccount& account) const override {
            if (!chunk.contains("timings")) return;
            account.ttft_ms = chunk["timings"]["prompt_ms"].get<double>();
            account.cached_tokens = chunk["timings"]["cache_n"].get<int>();
        }
    } dialect;
    StreamReader reader(&dialect);
    reader.on_headers(at_ms(0), 200);
    CHECK(feed(reader, 5, sse(R"({"choices":[{"delta":{"content":"x"}}]})")));
    CHECK(feed(reader, 6,
               sse(R"({"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":1},)"
                   R"("timings":{"prompt_ms":3.25,"cache_n":6}})")));
    const auto record = reader.record(kSent);
    CHECK(record.usage.cached_tokens == 6);
    REQUIRE(record.engine_ttft_ms);
    CHECK(*record.engine_ttft_ms == 3.25);
}

// ---- Bounds: what one event may hold ---------------------------------------------------------------

TEST_CASE("SseParser: an event past its cap stops the parser, and the events before it stand", "[sse][limits]") {
    SseParser parser(64);
    CHECK(describe(parser.feed("data: ok\n\n" + std::string(100, 'x'))) == std::vector<std::string>{"event=message id= data=ok"});
    CHECK(parser.overflowed());
    CHECK(parser.feed("\n\ndata: late\n\n").empty());  // nothing after the overflow is read

    // The data lines of one event count together, and a comment line counts too.
    SseParser lines(64);
    std::string many;
    for (int i = 0; i < 20; ++i) many += "data: 12345\n";
    CHECK(lines.feed(many).empty());
    CHECK(lines.overflowed());
    SseParser comment(64);
    comment.feed(":" + std::string(100, 'c'));
    CHECK(comment.overflowed());

    SseParser under(64);
    CHECK(under.feed("data: " + std::string(50, 'y') + "\n\n").size() == 1);
    CHECK_FALSE(under.overflowed());
    CHECK(SseParser().max_event_bytes() == std::size_t{16} << 20);
}

TEST_CASE("StreamReader: a line that never ends is a malformed stream past 16 MiB, and says so", "[sse][limits]") {
    StreamReader reader;
    reader.on_headers(at_ms(0), 200);
    const std::string endless((std::size_t{16} << 20) + 1, 'x');
    CHECK_FALSE(feed(reader, 1, endless));
    REQUIRE(reader.fault());
    CHECK(reader.fault()->kind == FaultKind::malformed_chunk);
    CHECK_THAT(reader.fault()->message, Catch::Contains("passed 16 MiB without ending"));
}
