// Cache evidence: the server's own account of what was cached, per request (usage.cached_tokens)
// and per run (prefix-cache counters, e.g. from a Prometheus exposition). Evidence decides whether
// the arms were what they claim; timing only decides how much the cache saves. Which metrics carry
// the counters is each engine's knowledge (vllm.hpp, ...); this header reads the text format.
#pragma once

#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine.hpp"
#include "records.hpp"

namespace kvgate {

// What an engine's metrics say about prefix caching.
struct MetricsView {
    CounterSnapshot counters;
    int block_size = 0;                    // 0 = not exposed
    std::optional<bool> prefix_caching;    // nullopt = not exposed
};

// One line of a Prometheus text exposition.
struct PrometheusSample {
    std::string name;
    std::string labels;  // `{a="x",b="y"}` or ""
    double value = 0;
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

// The samples of a text exposition. Malformed lines are skipped: the exposition is the server's,
// and a counter it lacks simply leaves the evidence unavailable.
inline std::vector<PrometheusSample> parse_prometheus(const std::string& text) {
    std::vector<PrometheusSample> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        const auto brace = line.find('{');
        const auto space = line.rfind(' ');
        if (space == std::string::npos) continue;
        PrometheusSample sample;
        sample.name = line.substr(0, std::min(brace, line.find(' ')));
        sample.labels = brace == std::string::npos ? "" : line.substr(brace, line.rfind('}') - brace + 1);
        sample.value = std::strtod(line.c_str() + space + 1, nullptr);
        out.push_back(std::move(sample));
    }
    return out;
}

inline CounterDeltas counter_deltas(const CounterSnapshot& before, const CounterSnapshot& after) {
    CounterDeltas d;
    d.available = before.available && after.available;
    if (d.available) {
        d.queries = after.queries - before.queries;
        d.hits = after.hits - before.hits;
    }
    if (before.parts.size() == after.parts.size())
        for (std::size_t i = 0; i < before.parts.size(); ++i)
            d.per_replica.push_back(counter_deltas(before.parts[i], after.parts[i]));
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
