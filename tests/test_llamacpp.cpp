// What kvgate knows about llama.cpp's server beyond the OpenAI API: its metrics, /tokenize after
// /apply-template, /props, the cache switches it sends, and `timings`; the whole engine against a
// loopback server that answers as llama-server does (bodies copied from its replies).
#include <catch2/catch.hpp>

#include <map>
#include <memory>

#include "kvgate/engine/llamacpp.hpp"
#include "kvgate/http/http_engine.hpp"
#include "loopback_server.hpp"

using namespace kvgate;
using namespace kvgate::test;

namespace {

// llama-server 0c1e57098's final stream chunk with include_usage (timings abridged).
constexpr const char* kFinalChunk =
    R"({"choices":[],"created":1,"id":"chatcmpl-x","model":"opt-125m-dummy","object":"chat.completion.chunk",)"
    R"("usage":{"completion_tokens":2,"prompt_tokens":892,"total_tokens":894,)"
    R"("prompt_tokens_details":{"cached_tokens":891}},)"
    R"("timings":{"cache_n":891,"prompt_n":1,"prompt_ms":56.377,"prompt_per_token_ms":56.377,)"
    R"("predicted_n":2,"predicted_ms":20.1}})";

constexpr const char* kMetrics =
    "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
    "# TYPE llamacpp:prompt_tokens_total counter\n"
    "llamacpp:prompt_tokens_total 3834\n"
    "llamacpp:prompt_tokens_cached_total 1175\n"
    "llamacpp:prompt_seconds_total 107.491\n"
    "llamacpp:n_tokens_max 892\n";

}  // namespace

TEST_CASE("llama.cpp's counters: queries are processed plus cached prompt tokens, hits the cached", "[llamacpp]") {
    const auto view = llamacpp::metrics_view(kMetrics);
    CHECK(view.counters.available);
    CHECK(view.counters.queries == 3834 + 1175);
    CHECK(view.counters.hits == 1175);
    CHECK(view.block_size == 1);
    const auto none = llamacpp::metrics_view("llamacpp:prompt_tokens_total 5\n");
    CHECK_FALSE(none.counters.available);  // one counter alone cannot say what was cached
}

TEST_CASE("the llama.cpp dialect counts a chat prompt as the server renders it", "[llamacpp]") {
    std::map<std::string, std::string> asked;
    const SideRequest side = [&](const std::string& method, const std::string& path, const std::string& body) {
        asked[method + " " + path] = body;
        if (path == "/apply-template") return SideReply{200, R"({"prompt":"<|user|> hello"})"};
        if (path == "/tokenize") return SideReply{200, R"({"tokens":[7,8,9,10]})"};
        if (path == "/props")
            return SideReply{200, R"({"build_info":"b0-0c1e57098","total_slots":1,"default_generation_settings":{"n_ctx":2048}})"};
        return SideReply{};
    };
    const llamacpp::Dialect d;
    CHECK(d.context_tokens(side, "m") == 2048);  // one slot's context, as llama-server 0c1e57098 reports it
    CHECK(d.count_tokens(side, "m", true, "hello") == 4);
    CHECK(nlohmann::json::parse(asked.at("POST /apply-template")).at("messages").at(0).at("content") == "hello");
    CHECK(nlohmann::json::parse(asked.at("POST /tokenize")).at("content") == "<|user|> hello");
    asked.clear();
    CHECK(d.count_tokens(side, "m", false, "hello") == 4);
    CHECK_FALSE(asked.count("POST /apply-template"));
    CHECK(nlohmann::json::parse(asked.at("POST /tokenize")).at("content") == "hello");
    CHECK(d.version(side) == "llama.cpp b0-0c1e57098");
    CHECK(d.engine_name() == "llama.cpp");
}

TEST_CASE("the llama.cpp dialect leaves unknown what a server does not answer, without throwing", "[llamacpp]") {
    const SideRequest down = [](const std::string&, const std::string&, const std::string&) { return SideReply{}; };
    const SideRequest odd = [](const std::string&, const std::string& path, const std::string&) {
        if (path == "/tokenize") return SideReply{200, R"({"tokens":[{"id":1,"piece":"a"}]})"};
        return SideReply{200, R"({"prompt": 3, "build_info": 7})"};
    };
    const llamacpp::Dialect d;
    CHECK_FALSE(d.count_tokens(down, "m", true, "x"));
    CHECK_FALSE(d.count_tokens(odd, "m", true, "x"));
    CHECK_FALSE(d.count_tokens(odd, "m", false, "x"));
    CHECK(d.version(down).empty());
    CHECK(d.version(odd).empty());
    const auto view = d.metrics(down);
    CHECK_FALSE(view.counters.available);
    CHECK(view.block_size == 1);  // known without asking
}

TEST_CASE("the llama.cpp dialect sends its cache switches and reads timings", "[llamacpp]") {
    nlohmann::json body = {{"model", "m"}};
    const llamacpp::Dialect nocache(false, 0);
    nocache.ask_fixed_output(body, 50);
    nocache.shape_request(body);
    CHECK(body.at("max_tokens") == 50);
    CHECK(body.at("ignore_eos") == true);
    CHECK(body.at("cache_prompt") == false);  // the server's --no-cache-prompt is only its default
    CHECK(body.at("n_cache_reuse") == 0);     // sent even when off: it overrides --cache-reuse
    EngineInfo info;
    nocache.describe(info);
    CHECK_FALSE(info.prefix_caching);
    CHECK(info.block_size == 1);
    CHECK(info.shifted_chunk_reuse == 0);

    const llamacpp::Dialect reuse(true, 32);
    reuse.shape_request(body);
    CHECK(body.at("cache_prompt") == true);
    CHECK(body.at("n_cache_reuse") == 32);
    reuse.describe(info);
    CHECK(info.prefix_caching);
    CHECK(info.shifted_chunk_reuse == 32);

    EngineAccount account;
    reuse.read_chunk(nlohmann::json::parse(kFinalChunk), account);
    REQUIRE(account.ttft_ms);
    CHECK(*account.ttft_ms == Approx(56.377));
    CHECK(account.cached_tokens == 891);
    EngineAccount none;
    reuse.read_chunk(nlohmann::json::parse(R"({"choices":[],"timings":{"prompt_ms":"slow"}})"), none);
    CHECK_FALSE(none.ttft_ms);
    CHECK_FALSE(none.cached_tokens);
}

TEST_CASE("HttpEngine with the llama.cpp dialect: request fields, evidence and description end to end",
          "[llamacpp][http]") {
    // Connections are served one at a time: the side connection's replies close it, so that the
    // timed connection is served next.
    LoopbackServer server([](Connection& conn) {
        while (const auto req = conn.read_request()) {
            if (req->path == "/v1/models") {
                conn.send(wire::json_response(200, "OK", R"({"object":"list","data":[]})"));
            } else if (req->path == "/props" || req->path == "/metrics") {
                conn.send(wire::json_response(200, "OK", req->path == "/props" ? R"({"build_info":"b0-0c1e57098"})"
                                                                                  : kMetrics));
                conn.close();
            } else {
                conn.send(wire::sse_head());
                conn.send(wire::event(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]})"));
                conn.send(wire::event(R"({"choices":[{"index":0,"delta":{"content":"Hi"}}]})"));
                conn.send(wire::event(R"({"choices":[{"index":0,"delta":{"content":" there"}}]})"));
                conn.send(wire::event(kFinalChunk));
                conn.send(wire::event("[DONE]") + wire::last_chunk());
            }
        }
    });
    Settings s;
    s.target.url = server.url();
    s.target.model = "opt-125m-dummy";
    s.prefix_caching = false;
    s.llamacpp.cache_reuse = 64;
    // As make_engine builds it for EngineKind::llamacpp_http.
    const auto engine =
        std::make_unique<HttpEngine>(s.target, std::make_unique<llamacpp::Dialect>(s.prefix_caching, s.llamacpp.cache_reuse));
    const EngineInfo info = engine->describe();
    CHECK(info.name == "llama.cpp");
    CHECK(info.version == "llama.cpp b0-0c1e57098");
    CHECK(info.block_size == 1);
    CHECK_FALSE(info.prefix_caching);
    CHECK(info.shifted_chunk_reuse == 0);  // no chunk is reused where nothing is cached
    CHECK(engine->prefix_cache_counters().hits == 1175);

    const Completion c = engine->complete("Say hello", 2);
    INFO("fault: " << (c.fault ? c.fault->message : "none"));
    REQUIRE_FALSE(c.fault);
    CHECK(c.record.usage.cached_tokens == 891);
    CHECK(c.record.usage.completion_tokens == 2);
    REQUIRE(c.record.engine_ttft_ms);
    CHECK(*c.record.engine_ttft_ms == Approx(56.377));
    const auto requests = server.requests();
    const auto body = nlohmann::json::parse(requests.back().body);
    CHECK(requests.back().path == "/v1/chat/completions");
    CHECK(body.at("cache_prompt") == false);
    CHECK(body.at("n_cache_reuse") == 64);
    CHECK(body.at("ignore_eos") == true);
    CHECK(body.at("max_tokens") == 2);
}
