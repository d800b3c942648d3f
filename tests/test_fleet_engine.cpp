// FleetEngine against loopback servers: a "router" that hands each request to a replica of its
// choosing (bumping that replica's prefix-cache counters, as vLLM does) and "replicas" that serve
// /metrics. kvgate must name the replica whose counters moved, sum the evidence, and learn the
// replicas from the router when they are not named.
#include <catch2/catch.hpp>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvgate/http/fleet_engine.hpp"

using namespace kvgate;

namespace {

constexpr const char* kFleetKeyEnv = "KVGATE_TEST_FLEET_API_KEY";
constexpr const char* kFleetKey = "sk-fleet-test-77e0b2";

// The Authorization headers a fake server was sent ("" for none), in order.
struct SeenKeys {
    std::mutex mutex;
    std::vector<std::string> keys;

    void add(const httplib::Request& req) {
        std::lock_guard<std::mutex> lock(mutex);
        keys.push_back(req.get_header_value("Authorization"));
    }
    std::vector<std::string> all() {
        std::lock_guard<std::mutex> lock(mutex);
        return keys;
    }
};

// Runs a bound `server` on a thread of its own, returning once it is running: a stop() before then
// would be lost and the join would wait forever. (bind_to_any_port already listens: a connection
// waits in the backlog until the thread accepts.)
std::thread start_serving(httplib::Server& server) {
    std::thread thread([&server] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return thread;
}

struct FakeReplica {
    std::atomic<int> queries{0}, hits{0};
    SeenKeys seen;
    httplib::Server server;
    std::thread thread;
    int port = 0;

    FakeReplica() {
        server.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
            seen.add(req);
            res.set_content("# TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total{engine=\"0\"} " +
                                std::to_string(queries.load()) + "\nvllm:prefix_cache_hits_total{engine=\"0\"} " +
                                std::to_string(hits.load()) + "\n",
                            "text/plain");
        });
        port = server.bind_to_any_port("127.0.0.1");
        thread = start_serving(server);
    }
    ~FakeReplica() {
        server.stop();
        thread.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

// Sends request k to replica route(k); lists its workers (or `listed`, when given) unless told not to.
struct FakeRouter {
    SeenKeys seen;
    httplib::Server server;
    std::thread thread;
    int port = 0;
    std::atomic<int> served{0};

    FakeRouter(std::vector<std::unique_ptr<FakeReplica>>& replicas, std::function<int(int)> route, bool lists,
               const std::vector<std::string>& listed = {}) {
        server.Post("/v1/chat/completions", [&replicas, route, this](const httplib::Request& req, httplib::Response& res) {
            seen.add(req);
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
            nlohmann::json urls = listed;
            if (listed.empty())
                for (const auto& r : replicas) urls.push_back(r->url());
            server.Get("/list_workers", [urls, this](const httplib::Request& req, httplib::Response& res) {
                seen.add(req);
                res.set_content(nlohmann::json{{"urls", urls}}.dump(), "application/json");
            });
        }
        port = server.bind_to_any_port("127.0.0.1");
        thread = start_serving(server);
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
    s.target.url = router;
    s.target.model = "m";
    s.fleet.replica_urls = replicas;
    s.fleet.policy = "round_robin";
    s.target.read_timeout_s = 10;
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
    const Settings engine_settings = fleet_settings(router.url(), fleet[0]->url() + "," + fleet[1]->url());
    FleetEngine engine(engine_settings.target, engine_settings.fleet);
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
    const Settings engine_settings = fleet_settings(router.url(), fleet[0]->url() + "," + fleet[1]->url());
    FleetEngine engine(engine_settings.target, engine_settings.fleet);
    const Completion c = engine.complete("hello", 1);
    REQUIRE(c.record.placement);
    CHECK(c.record.placement->outcome == PlacementOutcome::none_moved);
}

TEST_CASE("FleetEngine: an unreachable replica leaves the placement and the sum unknown", "[fleet_engine]") {
    auto fleet = replicas(1);
    FakeRouter router(fleet, [](int) { return 0; }, false);
    const Settings engine_settings = fleet_settings(router.url(), fleet[0]->url() + ",http://127.0.0.1:9");
    FleetEngine engine(engine_settings.target, engine_settings.fleet);
    const Completion c = engine.complete("hello", 1);
    REQUIRE(c.record.placement);
    CHECK(c.record.placement->outcome == PlacementOutcome::unreadable);
    CHECK(c.record.placement->replicas == std::vector<int>{1});
    CHECK_FALSE(engine.prefix_cache_counters().available);
}

TEST_CASE("FleetEngine: the replicas are learned from the router's /list_workers when not named", "[fleet_engine]") {
    auto fleet = replicas(2);
    FakeRouter router(fleet, [](int) { return 1; }, true);
    const Settings engine_settings = fleet_settings(router.url(), "");
    FleetEngine engine(engine_settings.target, engine_settings.fleet);
    CHECK(engine.replica_urls() == std::vector<std::string>{fleet[0]->url(), fleet[1]->url()});
    CHECK(engine.complete("hello", 1).record.placement->replica == 1);
}

TEST_CASE("FleetEngine: no replicas named and none listed is misuse that names the setting", "[fleet_engine]") {
    auto fleet = replicas(1);
    FakeRouter router(fleet, [](int) { return 0; }, false);
    const Settings unnamed = fleet_settings(router.url(), "");
    CHECK_THROWS_WITH(FleetEngine(unnamed.target, unnamed.fleet),
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

// ---- The API key, and what the router says -------------------------------------------------------

TEST_CASE("FleetEngine: the API key goes to the router and the replicas named, not to other hosts a router lists",
          "[fleet_engine][mask]") {
    ::setenv(kFleetKeyEnv, kFleetKey, 1);
    const std::string bearer = std::string("Bearer ") + kFleetKey;
    auto fleet = replicas(2);
    // The router is 127.0.0.1: a worker it lists as localhost is another host to kvgate, one on
    // 127.0.0.1 (another port) the router's own.
    const std::string elsewhere = "http://localhost:" + std::to_string(fleet[0]->port);
    FakeRouter router(fleet, [](int k) { return k % 2; }, true, {elsewhere, fleet[1]->url()});
    auto s = fleet_settings(router.url(), "");
    s.target.api_key_env = kFleetKeyEnv;
    {
        FleetEngine engine(s.target, s.fleet);
        REQUIRE_FALSE(engine.complete("hello", 1).fault);
        REQUIRE_FALSE(engine.complete("hello", 1).fault);
    }
    const auto router_keys = router.seen.all();
    REQUIRE_FALSE(router_keys.empty());
    CHECK(std::count(router_keys.begin(), router_keys.end(), bearer) == static_cast<std::ptrdiff_t>(router_keys.size()));
    const auto elsewhere_keys = fleet[0]->seen.all();
    REQUIRE_FALSE(elsewhere_keys.empty());
    CHECK(std::count(elsewhere_keys.begin(), elsewhere_keys.end(), "") == static_cast<std::ptrdiff_t>(elsewhere_keys.size()));
    const auto same_host_keys = fleet[1]->seen.all();
    REQUIRE_FALSE(same_host_keys.empty());
    CHECK(std::count(same_host_keys.begin(), same_host_keys.end(), bearer) ==
          static_cast<std::ptrdiff_t>(same_host_keys.size()));

    // Named by the user, the same replica is sent the key.
    s.fleet.replica_urls = elsewhere + "," + fleet[1]->url();
    FleetEngine named(s.target, s.fleet);
    REQUIRE_FALSE(named.complete("hello", 1).fault);
    CHECK(fleet[0]->seen.all().back() == bearer);
}

TEST_CASE("FleetEngine: the URLs a router lists are masked like fault messages", "[fleet_engine][mask]") {
    ::setenv(kFleetKeyEnv, kFleetKey, 1);
    auto fleet = replicas(1);
    FakeRouter router(fleet, [](int) { return 0; }, true, {fleet[0]->url(), std::string("http://") + kFleetKey + ".invalid:1"});
    auto s = fleet_settings(router.url(), "");
    s.target.api_key_env = kFleetKeyEnv;
    FleetEngine engine(s.target, s.fleet);
    const EngineInfo info = engine.describe();
    CHECK(info.replica_urls == std::vector<std::string>{fleet[0]->url(), "http://***.invalid:1"});

    FakeRouter unusable(fleet, [](int) { return 0; }, true, {std::string("http://127.0.0.1:1/") + kFleetKey});
    s.target.url = unusable.url();
    CHECK_THROWS_WITH(FleetEngine(s.target, s.fleet),
                      Catch::Contains("/list_workers names a replica") && !Catch::Contains(kFleetKey));
}

// A replica whose /metrics sends one byte every 50 ms, each within the read timeout, for 3 s.
struct DrippingReplica {
    httplib::Server server;
    std::thread thread;
    int port = 0;

    DrippingReplica() {
        server.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
            const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
            res.set_chunked_content_provider("text/plain", [until](std::size_t, httplib::DataSink& sink) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                if (std::chrono::steady_clock::now() > until) sink.done();
                else if (!sink.write("#", 1)) return false;
                return true;
            });
        });
        port = server.bind_to_any_port("127.0.0.1");
        thread = start_serving(server);
    }
    ~DrippingReplica() {
        server.stop();
        thread.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

TEST_CASE("FleetEngine: a replica whose /metrics never ends is unreadable at the request deadline",
          "[fleet_engine][deadline]") {
    DrippingReplica dripping;
    auto fleet = replicas(1);
    FakeRouter router(fleet, [](int) { return 0; }, false);
    auto s = fleet_settings(router.url(), fleet[0]->url() + "," + dripping.url());
    s.target.read_timeout_s = 0.3;
    s.target.request_timeout_s = 0.5;
    FleetEngine engine(s.target, s.fleet);
    const auto start = std::chrono::steady_clock::now();
    const Completion c = engine.complete("hello", 1);
    const double elapsed_ms = ms_between(start, std::chrono::steady_clock::now());
    REQUIRE(c.record.placement);
    CHECK(c.record.placement->outcome == PlacementOutcome::unreadable);
    CHECK(elapsed_ms < 2500);  // two looks at the counters, 0.5 s each
}

TEST_CASE("the host a replica shares with the router: scheme and host, any port, any case", "[fleet_engine][mask]") {
    using kvgate::detail::scheme_and_host;
    CHECK(scheme_and_host("http://Router.example:8000") == "http://router.example");
    CHECK(scheme_and_host("http://router.example") == "http://router.example");
    CHECK(scheme_and_host("http://[::1]:8001") == "http://[::1]");
    CHECK(scheme_and_host("https://127.0.0.1:8000") != scheme_and_host("http://127.0.0.1:8000"));
}
