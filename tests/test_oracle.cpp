// The oracle of the TTFT-fidelity benchmark: if it stamped after its send(), or did not wait, the
// benchmark would compare clients against nothing and still print a table. Every check here is a
// causal order that holds on any machine, however loaded: no timing tolerance.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "../bench/oracle_server.hpp"
#include "kvgate/engine/vllm.hpp"
#include "kvgate/http/http_engine.hpp"

using namespace kvgate;
using namespace kvgate::bench;

namespace {

constexpr int kDelayMs = 30;

OracleConfig oracle_config(RolePlacement role) {
    OracleConfig c;
    c.first_token_delay_ms = kDelayMs;
    c.tokens = 3;
    c.inter_token_us = 200;
    c.role = role;
    return c;
}

Settings settings_for(const OracleServer& oracle) {
    Settings s;
    s.target.url = oracle.url();
    s.target.model = "oracle";
    s.target.connect_timeout_s = 1;
    s.target.read_timeout_s = 2;
    return s;
}

}  // namespace

TEST_CASE("the oracle stamps its first token after the request and the delay, before kvgate sees it", "[oracle]") {
    const auto role = GENERATE(RolePlacement::separate, RolePlacement::together, RolePlacement::early);
    CAPTURE(to_string(role));
    OracleServer oracle(oracle_config(role));
    HttpEngine client(settings_for(oracle).target, std::make_unique<vllm::Dialect>());

    for (std::uint64_t i = 0; i < 2; ++i) {
        const auto timed = client.complete("hello", 3);
        REQUIRE_FALSE(timed.fault);
        const auto records = oracle.records_since(i);
        REQUIRE(records.size() == 1);
        const auto& oracle_saw = records.front();
        const auto sent_ns = monotonic_ns(timed.sent);
        const auto client_first_token_ns =
            sent_ns + static_cast<std::int64_t>(*timed.record.stamps.first_token_ms * 1e6);

        CHECK(oracle_saw.seq == i);
        CHECK(sent_ns < oracle_saw.request_read_ns);
        CHECK(oracle_saw.first_token_ns - oracle_saw.request_read_ns >= kDelayMs * 1'000'000LL);
        CHECK(oracle_saw.first_token_ns < client_first_token_ns);
        CHECK(*timed.record.stamps.first_token_ms >= kDelayMs);
        CHECK(timed.record.usage.completion_tokens == 3);
    }
    CHECK(oracle.records_since().back().connection == 0);  // both requests on one keep-alive connection
}

TEST_CASE("the shipped HttpEngine's TTFT honours the oracle's delay and exceeds the oracle's own", "[oracle]") {
    OracleServer oracle(oracle_config(RolePlacement::separate));
    HttpEngine engine(settings_for(oracle).target, std::make_unique<vllm::Dialect>());

    const auto completion = engine.complete("hello", 3);
    REQUIRE_FALSE(completion.fault);
    const auto oracle_saw = oracle.records_since().at(0);
    const double client_ttft_ms = *completion.record.stamps.first_token_ms;
    // The client's TTFT spans the oracle's, from before the request was read to after the token was sent.
    CHECK(client_ttft_ms >= kDelayMs);
    CHECK(client_ttft_ms * 1e6 > static_cast<double>(oracle_saw.first_token_ns - oracle_saw.request_read_ns));
}

TEST_CASE("the oracle serves /v1/completions and its log, and tags requests with x-request-id", "[oracle]") {
    OracleConfig config = oracle_config(RolePlacement::separate);
    config.first_token_delay_ms = 1;
    OracleServer oracle(config);
    httplib::Client http(oracle.url());

    httplib::Headers tagged = {{"x-request-id", "probe-7"}};
    auto streamed = http.Post("/v1/completions", tagged, R"({"prompt":"hi","stream":true})", "application/json");
    REQUIRE(streamed);
    CHECK(streamed->status == 200);
    CHECK(streamed->body.find(R"("text":" tok0")") != std::string::npos);
    CHECK(streamed->body.find("data: [DONE]") != std::string::npos);

    auto log = http.Get("/oracle/log");
    REQUIRE(log);
    const auto j = nlohmann::json::parse(log->body);
    REQUIRE(j.at("requests").size() == 1);
    CHECK(j["requests"][0]["request_id"] == "probe-7");
    CHECK(j["requests"][0]["path"] == "/v1/completions");
    CHECK(j["config"]["clock"] == "CLOCK_MONOTONIC");

    auto missing = http.Get("/v1/models");
    REQUIRE(missing);
    CHECK(missing->status == 404);
}
