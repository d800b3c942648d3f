// What kvgate knows about vLLM beyond the OpenAI API: its metrics, /tokenize, /version, ignore_eos
// and the per-request metrics extension, each through the dialect's seam.
#include <catch2/catch.hpp>

#include <map>

#include "kvgate/engine/vllm.hpp"

using namespace kvgate;

TEST_CASE("prefix-cache counters and cache config are read from vLLM's /metrics", "[vllm]") {
    const std::string text =
        "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.\n"
        "# TYPE vllm:prefix_cache_queries_total counter\n"
        "vllm:prefix_cache_queries_total{engine=\"0\",model_name=\"m\"} 866.0\n"
        "vllm:prefix_cache_queries_total{engine=\"1\",model_name=\"m\"} 100.0\n"
        "vllm:prefix_cache_queries_created{engine=\"0\",model_name=\"m\"} 1.7959035625610852e+09\n"
        "vllm:prefix_cache_hits_total{engine=\"0\",model_name=\"m\"} 384.0\n"
        "vllm:external_prefix_cache_hits_total{engine=\"0\",model_name=\"m\"} 999.0\n"
        "vllm:cache_config_info{_block_size_resolved=\"True\",block_size=\"128\",enable_prefix_caching=\"False\","
        "engine=\"0\"} 1.0\n";
    const auto view = vllm::metrics_view(text);
    CHECK(view.counters.available);
    CHECK(view.counters.queries == 966);
    CHECK(view.counters.hits == 384);  // external_ counters are another cache
    CHECK(view.block_size == 128);
    REQUIRE(view.prefix_caching);
    CHECK_FALSE(*view.prefix_caching);
}

TEST_CASE("a server without the counters gives no evidence", "[vllm]") {
    const auto view = vllm::metrics_view("some_other_metric 1\n\ngarbage line\n");
    CHECK_FALSE(view.counters.available);
    CHECK(view.block_size == 0);
    CHECK_FALSE(view.prefix_caching);
    CHECK_FALSE(counter_deltas({true, 1, 1}, view.counters).available);
}

TEST_CASE("the vLLM dialect asks /tokenize with the chat messages and reads its count", "[vllm]") {
    std::map<std::string, std::string> asked;
    const SideRequest side = [&](const std::string& method, const std::string& path, const std::string& body) {
        asked[method + " " + path] = body;
        if (path == "/tokenize") return SideReply{200, R"({"count": 42, "max_model_len": 1024, "tokens": [1]})"};
        if (path == "/version") return SideReply{200, R"({"version": "0.32.0"})"};
        return SideReply{};
    };
    const vllm::Dialect d;
    CHECK(d.count_tokens(side, "m", true, "hello") == 42);
    const auto body = nlohmann::json::parse(asked.at("POST /tokenize"));
    CHECK(body.at("messages").at(0).at("content") == "hello");
    CHECK(d.count_tokens(side, "m", false, "hello") == 42);
    CHECK(nlohmann::json::parse(asked.at("POST /tokenize")).at("prompt") == "hello");
    CHECK(d.version(side) == "0.32.0");
    CHECK(d.engine_name() == "vllm");
    CHECK(d.context_tokens(side, "m") == 1024);  // /tokenize's max_model_len
    const SideRequest silent = [](const std::string&, const std::string&, const std::string&) { return SideReply{}; };
    CHECK_FALSE(d.context_tokens(silent, "m"));
}

TEST_CASE("the vLLM dialect tokenizes chat messages with or without the generation prompt", "[vllm]") {
    std::string asked;
    const SideRequest side = [&](const std::string&, const std::string& path, const std::string& body) {
        asked = body;
        if (path == "/tokenize") return SideReply{200, R"({"count": 3, "max_model_len": 1024, "tokens": [2, 7, 9]})"};
        return SideReply{};
    };
    const vllm::Dialect d;
    const auto messages = messages_json({{Role::system, "be brief"}, {Role::user, "hi"}});
    CHECK(d.message_token_ids(side, "m", messages, false) == std::vector<int>{2, 7, 9});
    const auto body = nlohmann::json::parse(asked);
    CHECK(body.at("add_generation_prompt") == false);
    CHECK(body.at("messages").at(0).at("role") == "system");
    CHECK(body.at("messages").at(1).at("content") == "hi");
    d.message_token_ids(side, "m", messages, true);
    CHECK(nlohmann::json::parse(asked).at("add_generation_prompt") == true);

    const SideRequest odd = [](const std::string&, const std::string&, const std::string&) {
        return SideReply{200, R"({"count": 2, "tokens": [1, "x"]})"};
    };
    const SideRequest down = [](const std::string&, const std::string&, const std::string&) { return SideReply{}; };
    CHECK_FALSE(d.message_token_ids(odd, "m", messages, false));
    CHECK_FALSE(d.message_token_ids(down, "m", messages, false));
}

TEST_CASE("the vLLM dialect leaves unknown what a server does not answer, without throwing", "[vllm]") {
    const SideRequest down = [](const std::string&, const std::string&, const std::string&) { return SideReply{}; };
    const SideRequest odd = [](const std::string&, const std::string&, const std::string&) {
        return SideReply{200, R"({"count": "many", "version": 7})"};
    };
    const vllm::Dialect d;
    CHECK_FALSE(d.count_tokens(down, "m", true, "x"));
    CHECK_FALSE(d.count_tokens(odd, "m", true, "x"));
    CHECK(d.version(down).empty());
    CHECK(d.version(odd).empty());
    CHECK_FALSE(d.metrics(down).counters.available);
}

TEST_CASE("the vLLM dialect asks for a fixed output length and reads its per-request TTFT", "[vllm]") {
    const vllm::Dialect d;
    nlohmann::json body = {{"model", "m"}};
    d.ask_fixed_output(body, 50);
    CHECK(body.at("max_tokens") == 50);
    CHECK(body.at("ignore_eos") == true);
    EngineAccount account;
    d.read_chunk(nlohmann::json::parse(R"({"choices": [], "usage": {"time_to_first_token_ms": 12.5}})"), account);
    REQUIRE(account.ttft_ms);
    CHECK(*account.ttft_ms == 12.5);
    EngineAccount current;  // vLLM 0.32 with --enable-per-request-metrics
    d.read_chunk(nlohmann::json::parse(R"({"choices": [], "usage": {"prompt_tokens": 9},
                                           "metrics": {"time_to_first_token_ms": 7.25, "queue_time_ms": 0.1}})"),
                 current);
    REQUIRE(current.ttft_ms);
    CHECK(*current.ttft_ms == 7.25);
    EngineAccount none;
    d.read_chunk(nlohmann::json::parse(R"({"choices": []})"), none);
    CHECK_FALSE(none.ttft_ms);
}
