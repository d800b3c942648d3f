// FleetEngine against loopback servers: a "router" that hands each request to a replica of its
// choosing (bumping that replica's prefix-cache counters, as vLLM does) and "replicas" that serve
// /metrics. kvgate must name the replica whose counters moved, sum the evidence, and learn the
// replicas from the router when they are not named.
#include <catch2/catch.hpp>

#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kvgate/fleet_engine.hpp"

using namespace kvgate;

namespace {

struct FakeReplica {
    std::atomic<int> queries{0}, hits{0};
    httplib::Server server;
    std::thread thread;
    int port = 0;

    FakeReplica() {
        server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
            res.set_content("# TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total{engine=\"0\"} " +
                                std::to_string(queries.load()) + "\nvllm:prefix_cache_hits_total{engine=\"0\"} " +
                                std::to_string(hits.load()) + "\n",
                            "text/plain");
        });
        port = server.bind_to_any_port("127.0.0.1");
        // bind_to_any_port already listens: a connection waits in the backlog until the thread accepts.
        thread = std::thread([this] { server.listen_after_bind(); });
    }
    ~FakeReplica() {
        server.stop();
        thread.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

// Sends request k to replica route(k); lists its workers unless told not to.
struct FakeRouter {
    httplib::Server server;
    std::thread thread;
    int port = 0;
    std::atomic<int> served{0};

    FakeRouter(std::vector<std::unique_ptr<FakeReplica>>& replicas, std::function<int(int)> route, bool lists) {
        server.Post("/v1/chat/completions", [&replicas, route, this](const httplib::Request&, httplib::Response& res) {
            const int k = served++;
            const int to = route(k);
            if (to >= 0) {
                replicas[static_cast<std::size_t>(to)]->queries += 100;
                replicas[static_cast<std::size_t>(to)]->hits += 64;
            }
            res.set_content("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]\n\n",
                            "text/event-stream");
        });
        if (lists) {
            std::string urls;
            for (const auto& r : replicas) urls += (urls.empty() ? "\"" : ",\"") + r->url() + "\"";
            server.Get("/list_workers", [urls](const httplib::Request&, httplib::Response& res) {
                res.set_content("{\"urls\":[" + urls + "]}", "application/json");
            });
        }
        port = server.bind_to_any_port("127.0.0.1");
        // bind_to_any_port already listens: a connection waits in the backlog until the thread accepts.
        thread = std::thread([this] { server.listen_after_bind(); });
    }
    ~FakeRouter() {
        server.stop();
        thread.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

Settings fleet_settings(const std::string& router, const std::string& replicas) {
    Settings s;
    s.engine = EngineKind::vllm_fleet;
    s.url = router;
    s.model = "m";
    s.fleet_replica_urls = replicas;
    s.fleet_policy = "round_robin";
    s.read_timeout_s = 10;
    return s;
}

std::vector<std::unique_ptr<FakeReplica>> replicas(int n) {
    std::vector<std::unique_ptr<FakeReplica>> out;
    for (int i = 0; i < n; ++i) out.push_back(std::make_unique<FakeReplica>());
    return out;
}

}  // namespace

TEST_CASE("FleetEngine: each request is placed on the replica whose counters moved", "[fleet_engine]") {
    auto fleet = replicas(2);
    FakeRouter router(fleet, [](int k) { return k % 2; }, false);
    FleetEngine engine(fleet_settings(router.url(), fleet[0]->url() + "," + fleet[1]->url()));
    for (int k = 0; k < 4; ++k) {
        const Completion c = engine.complete("hello", 1);
        REQUIRE_FALSE(c.fault);
        REQUIRE(c.record.placement);
        CHECK(c.record.placement->outcome == PlacementOutcome::served);
        CHECK(c.record.placement->replica == k % 2);
        CHECK(c.record.placement->queried_tokens == 100);
        CHECK(c.record.placement->hit_tokens == 64);
    }
    const CounterSnapshot total = engine.prefix_cache_counters();
    CHECK(total.available);
    CHECK(total.queries == 400);
    REQUIRE(total.parts.size() == 2);
    CHECK(total.parts[1].hits == 128);
    const EngineInfo info = engine.describe();
    CHECK(info.replica_urls.size() == 2);
    CHECK(info.router_policy == "round_robin");
}

TEST_CASE("FleetEngine: a request no replica's counters show is not placed, and says why", "[fleet_engine]") {
    auto fleet = replicas(2);
    FakeRouter router(fleet, [](int) { return -1; }, false);
    FleetEngine engine(fleet_settings(router.url(), fleet[0]->url() + "," + fleet[1]->url()));
    const Completion c = engine.complete("hello", 1);
    REQUIRE(c.record.placement);
    CHECK(c.record.placement->outcome == PlacementOutcome::none_moved);
}

TEST_CASE("FleetEngine: an unreachable replica leaves the placement and the sum unknown", "[fleet_engine]") {
    auto fleet = replicas(1);
    FakeRouter router(fleet, [](int) { return 0; }, false);
    FleetEngine engine(fleet_settings(router.url(), fleet[0]->url() + ",http://127.0.0.1:9"));
    const Completion c = engine.complete("hello", 1);
    REQUIRE(c.record.placement);
    CHECK(c.record.placement->outcome == PlacementOutcome::unreadable);
    CHECK(c.record.placement->replicas == std::vector<int>{1});
    CHECK_FALSE(engine.prefix_cache_counters().available);
}

TEST_CASE("FleetEngine: the replicas are learned from the router's /list_workers when not named", "[fleet_engine]") {
    auto fleet = replicas(2);
    FakeRouter router(fleet, [](int) { return 1; }, true);
    FleetEngine engine(fleet_settings(router.url(), ""));
    CHECK(engine.replica_urls() == std::vector<std::string>{fleet[0]->url(), fleet[1]->url()});
    CHECK(engine.complete("hello", 1).record.placement->replica == 1);
}

TEST_CASE("FleetEngine: no replicas named and none listed is misuse that names the setting", "[fleet_engine]") {
    auto fleet = replicas(1);
    FakeRouter router(fleet, [](int) { return 0; }, false);
    CHECK_THROWS_WITH(FleetEngine(fleet_settings(router.url(), "")),
                      Catch::Contains("KVGATE_FLEET_REPLICA_URLS is empty") && Catch::Contains("/list_workers: HTTP 404") &&
                          Catch::Contains("--fleet-replica-urls"));
}

TEST_CASE("worker lists: vllm-router's {urls}, a plain list, and objects with a url", "[fleet_engine]") {
    using kvgate::detail::worker_urls_from_json;
    CHECK(worker_urls_from_json(R"({"urls":["http://a:1","http://b:2"]})") ==
          std::vector<std::string>{"http://a:1", "http://b:2"});
    CHECK(worker_urls_from_json(R"(["http://a:1"])") == std::vector<std::string>{"http://a:1"});
    CHECK(worker_urls_from_json(R"({"workers":[{"url":"http://a:1"}]})") == std::vector<std::string>{"http://a:1"});
    CHECK(worker_urls_from_json("not json").empty());
}
