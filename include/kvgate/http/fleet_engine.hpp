// A fleet: vLLM replicas behind a router (vllm-router or any that forwards the OpenAI API). Every
// request goes through the router, timed exactly as HttpEngine times a single server; kvgate never
// routes. Around each request it reads every replica's /metrics, and placement.hpp names the
// replica whose prefix-cache counters moved: that replica served it (requests are sequential).
// The run's Prometheus evidence is the sum over the replicas, each replica's share kept beside it
// (the router's own /metrics forwards to one replica only).
// The API key goes to the hosts the user named only: the router (KVGATE_URL) and the replicas of
// KVGATE_FLEET_REPLICA_URLS. A replica learned from the router's /list_workers gets it only where
// its scheme and host are the router's (its port may differ); vLLM asks no key for /metrics, and
// replicas that do can be named. Every URL the router lists is masked like a fault message.
#pragma once

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvgate/engine/engine.hpp"
#include "kvgate/engine/vllm.hpp"
#include "kvgate/http/http_engine.hpp"
#include "kvgate/model/placement.hpp"
#include "kvgate/model/settings.hpp"

namespace kvgate {

namespace detail {

// The worker list a router answers at GET /list_workers: {"urls": [...]} (vllm-router), or a list
// of URLs or of {"url": ...} objects under "workers" or at the top level. Empty: none found.
inline std::vector<std::string> worker_urls_from_json(const std::string& body) {
    const auto j = nlohmann::json::parse(body, nullptr, false);
    const nlohmann::json* list = nullptr;
    if (j.is_array()) list = &j;
    else if (j.is_object())
        for (const char* key : {"urls", "workers", "worker_urls"})
            if (j.contains(key) && j[key].is_array()) {
                list = &j[key];
                break;
            }
    std::vector<std::string> out;
    if (!list) return out;
    for (const auto& w : *list) {
        if (w.is_string()) out.push_back(w.get<std::string>());
        else if (w.is_object() && w.contains("url") && w["url"].is_string()) out.push_back(w["url"].get<std::string>());
    }
    return out;
}

inline std::string csv(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ",") + i;
    return out;
}

// "scheme://host" of a server root as checked_url() leaves it, lower-cased, without its port.
inline std::string scheme_and_host(const std::string& url) {
    const auto scheme = url.find("://");
    const auto host = scheme == std::string::npos ? 0 : scheme + 3;
    auto end = url.size();
    if (host < url.size() && url[host] == '[') {  // [IPv6]:port
        if (const auto bracket = url.find(']', host); bracket != std::string::npos) end = bracket + 1;
    } else if (const auto colon = url.find(':', host); colon != std::string::npos) {
        end = colon;
    }
    std::string out = url.substr(0, end);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

}  // namespace detail

class FleetEngine : public Engine {
public:
    // The router is the target; the options name the replicas behind it and its policy.
    FleetEngine(const Target& router, const FleetOptions& options)
        : target_(router), options_(options), router_(router, std::make_unique<vllm::Dialect>()) {
        if (const char* key = std::getenv(router.api_key_env.c_str()); key && *key) api_key_ = key;
        const bool named = !options.replica_urls.empty();
        urls_ = named ? split_url_list(options.replica_urls) : ask_router();
        const std::string router_host = detail::scheme_and_host(checked_url(router.url));
        for (const auto& url : urls_) {
            try {
                replicas_.push_back(std::make_unique<BoundedClient>(
                    url, router, named ? "KVGATE_FLEET_REPLICA_URLS" : "the router's /list_workers"));
            } catch (const std::invalid_argument& e) {  // the URL may be the router's words
                throw std::invalid_argument(detail::server_text(e.what(), api_key_));
            }
            keyed_.push_back(named || detail::scheme_and_host(url) == router_host);
        }
    }

    // As kvgate connects to them; describe() masks them.
    const std::vector<std::string>& replica_urls() const { return urls_; }

    EngineInfo describe() override {
        EngineInfo info = router_.describe();
        for (const auto& url : urls_) info.replica_urls.push_back(detail::server_text(url, api_key_));
        info.router_policy = options_.policy;
        return info;
    }

    std::optional<int> count_tokens(const std::string& prompt) override { return router_.count_tokens(prompt); }

    Completion complete(const std::string& prompt, int max_tokens) override {
        return placed([&] { return router_.complete(prompt, max_tokens); });
    }

    bool takes_messages() const override { return router_.takes_messages(); }
    std::optional<std::vector<int>> message_token_ids(const std::vector<Message>& messages,
                                                      bool add_generation_prompt) override {
        return router_.message_token_ids(messages, add_generation_prompt);
    }
    Completion complete_messages(const std::vector<Message>& messages, int max_tokens) override {
        return placed([&] { return router_.complete_messages(messages, max_tokens); });
    }

    // The fleet's counters: the sum over replicas (available when every replica's is), each one kept.
    CounterSnapshot prefix_cache_counters() override {
        CounterSnapshot total;
        total.available = true;
        for (const auto& part : snapshot()) {
            total.available = total.available && part.available;
            total.queries += part.queries;
            total.hits += part.hits;
            total.parts.push_back(part);
        }
        if (!total.available) total.queries = total.hits = 0;
        return total;
    }

private:
    // Sends one request through the router, and names the replica whose counters it moved.
    template <class Send>
    Completion placed(Send send) {
        const auto before = snapshot();
        Completion c = send();
        auto after = snapshot();
        Placement p = attribute(counters(before), counters(after));
        // The counters are updated when the engine records the request's stats, which can trail the
        // stream's end by a few ms: look again before calling it unplaced.
        for (int i = 0; i < 20 && p.outcome == PlacementOutcome::none_moved; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
            after = snapshot();
            p = attribute(counters(before), counters(after));
        }
        c.record.placement = p;
        return c;
    }

    std::vector<std::string> ask_router() {
        BoundedClient router(checked_url(target_.url), target_, "KVGATE_URL");
        const Fetched res = router.fetch("GET", "/list_workers", headers(true));
        const std::string said =
            res.status ? "HTTP " + std::to_string(res.status)
            : res.expired ? "no whole answer within " + seconds_text(router.deadline_s())
            : res.over_limit ? "an answer past " + mib_text(max_body_bytes)
                             : "no answer (" + httplib::to_string(res.error) + ")";
        std::vector<std::string> urls;
        if (res.status == 200) urls = detail::worker_urls_from_json(res.body);
        if (urls.empty())
            throw std::invalid_argument("KVGATE_FLEET_REPLICA_URLS is empty and the router at " + target_.url +
                                        " did not list its workers (GET /list_workers: " + said +
                                        "); name the replicas: --fleet-replica-urls http://host:port,http://host:port");
        try {
            return split_url_list(detail::csv(urls));
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument(detail::server_text(
                std::string("the router's /list_workers names a replica kvgate cannot use (") + e.what() +
                    "); name the replicas with --fleet-replica-urls",
                api_key_));
        }
    }

    httplib::Headers headers(bool keyed) const {
        httplib::Headers h;
        if (keyed && !api_key_.empty()) h.emplace("Authorization", "Bearer " + api_key_);
        return h;
    }

    // Every replica's counters now, in replica order; an unreadable one is available = false.
    std::vector<CounterSnapshot> snapshot() {
        std::vector<CounterSnapshot> out;
        for (std::size_t i = 0; i < replicas_.size(); ++i) {
            const Fetched res = replicas_[i]->fetch("GET", "/metrics", headers(keyed_[i]));
            out.push_back(res.status == 200 ? vllm::metrics_view(res.body).counters : CounterSnapshot{});
        }
        return out;
    }

    static std::vector<ReplicaCounters> counters(const std::vector<CounterSnapshot>& snap) {
        std::vector<ReplicaCounters> out;
        for (const auto& s : snap) out.push_back({s.available, s.queries, s.hits});
        return out;
    }

    Target target_;
    FleetOptions options_;
    HttpEngine router_;
    std::string api_key_;
    std::vector<std::string> urls_;
    std::vector<std::unique_ptr<BoundedClient>> replicas_;  // the side connections to each /metrics
    std::vector<bool> keyed_;                                // per replica: sent the API key (see the top)
};

}  // namespace kvgate
