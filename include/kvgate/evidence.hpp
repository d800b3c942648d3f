// Cache evidence: the server's own account of what was cached, per request (usage.cached_tokens)
// and per run (Prometheus prefix-cache counters). Evidence decides whether the arms were what they
// claim; timing only decides how much the cache saves.
#pragma once

#include <cstdlib>
#include <map>
#include <sstream>
#include <string>

#include "engine.hpp"
#include "records.hpp"

namespace kvgate {

// What a Prometheus text exposition says about prefix caching.
struct MetricsView {
    CounterSnapshot counters;
    int block_size = 0;                    // from vllm:cache_config_info, 0 = not exposed
    std::optional<bool> prefix_caching;    // idem
};

namespace detail {

// Value of label `name` in a `{a="x",b="y"}` label set, or "".
inline std::string label_value(const std::string& labels, const std::string& name) {
    const std::string key = name + "=\"";
    for (std::size_t at = labels.find(key); at != std::string::npos; at = labels.find(key, at + 1)) {
        if (at != 0 && labels[at - 1] != '{' && labels[at - 1] != ',') continue;  // "_block_size" is not "block_size"
        const auto begin = at + key.size();
        const auto end = labels.find('"', begin);
        return end == std::string::npos ? std::string{} : labels.substr(begin, end - begin);
    }
    return {};
}

}  // namespace detail

// Sums each counter over its label sets (one per engine / model). Malformed lines are ignored:
// the exposition is the server's, and a counter it lacks simply leaves the evidence unavailable.
inline MetricsView parse_metrics(const std::string& text) {
    MetricsView view;
    bool saw_queries = false, saw_hits = false;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        const auto brace = line.find('{');
        const auto space = line.rfind(' ');
        if (space == std::string::npos) continue;
        const std::string name = line.substr(0, std::min(brace, line.find(' ')));
        const std::string labels = brace == std::string::npos ? "" : line.substr(brace, line.rfind('}') - brace + 1);
        const double value = std::strtod(line.c_str() + space + 1, nullptr);
        if (name == "vllm:prefix_cache_queries_total") {
            view.counters.queries += value;
            saw_queries = true;
        } else if (name == "vllm:prefix_cache_hits_total") {
            view.counters.hits += value;
            saw_hits = true;
        } else if (name == "vllm:cache_config_info") {
            view.block_size = std::atoi(detail::label_value(labels, "block_size").c_str());
            const auto caching = detail::label_value(labels, "enable_prefix_caching");
            if (!caching.empty()) view.prefix_caching = caching == "True" || caching == "true";
        }
    }
    view.counters.available = saw_queries && saw_hits;
    return view;
}

inline CounterDeltas counter_deltas(const CounterSnapshot& before, const CounterSnapshot& after) {
    CounterDeltas d;
    d.available = before.available && after.available;
    if (d.available) {
        d.queries = after.queries - before.queries;
        d.hits = after.hits - before.hits;
    }
    return d;
}

// Cached tokens the hit arm must show: every full block of the warmed prompt [A,B].
inline int expected_hit_cached_tokens(int warm_prompt_tokens, int block_size) {
    if (block_size <= 0) return 1;  // block unknown: any cached token counts
    return (warm_prompt_tokens / block_size) * block_size;
}

// The miss arm may share less than one block with anything cached ([B,Q] starts a new prefix).
inline bool miss_cached_tokens_acceptable(int cached_tokens, int block_size) {
    return cached_tokens < (block_size > 0 ? block_size : 1);
}

}  // namespace kvgate
