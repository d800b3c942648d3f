// Cache evidence: the server's own account of what was cached, per request (usage.cached_tokens)
// and per run (prefix-cache counters, e.g. from a Prometheus exposition). Evidence decides whether
// the arms were what they claim; timing only decides how much the cache saves. Which metrics carry
// the counters is each engine's knowledge (vllm.hpp, ...); this header reads the text format.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "kvgate/engine/engine.hpp"
#include "kvgate/engine/reuse.hpp"
#include "kvgate/model/records.hpp"

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

// Counters are cumulative since the server started: ones that fell mean it restarted during the run,
// and their difference describes no run at all (it is no evidence that the cache served nothing).
inline CounterDeltas counter_deltas(const CounterSnapshot& before, const CounterSnapshot& after) {
    CounterDeltas d;
    d.available = before.available && after.available;
    if (d.available) {
        d.queries = after.queries - before.queries;
        d.hits = after.hits - before.hits;
    }
    if (d.available && (d.queries < 0 || d.hits < 0)) {
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      "the Prometheus prefix-cache counters fell during the run (queries %.0f to %.0f, hits %.0f to "
                      "%.0f): the server restarted, so they cover no single run",
                      before.queries, after.queries, before.hits, after.hits);
        d = CounterDeltas{};
        d.unavailable_because = buf;
    }
    if (before.parts.size() == after.parts.size())
        for (std::size_t i = 0; i < before.parts.size(); ++i)
            d.per_replica.push_back(counter_deltas(before.parts[i], after.parts[i]));
    return d;
}

// Two prompts for template_shape(): different first and last words, the protocol's form (a
// leading space, whole sentences).
inline const char* template_probe_a() { return " River stone market."; }
inline const char* template_probe_b() { return " Window candle thunder?"; }

inline TemplateShape template_shape(const TokenIds& a, const TokenIds& b) {
    TemplateShape t;
    t.prefix_tokens = common_prefix_length(a, b);
    t.suffix_tokens = common_suffix_length(a, b, static_cast<int>(std::min(a.size(), b.size())) - t.prefix_tokens);
    return t;
}

// Cached tokens a hit must show: the whole blocks of its warm prompt [A,B] that prefix the
// measured prompt [A,B,Q] as rendered, i.e. the warm prompt less the template's suffix (which
// the measured prompt replaces with Q), capped at the measured prompt's length - 1 (the last
// token is always computed). Needs the block size and the template's shape; see hit_rule_known().
inline int expected_hit_cached_tokens(int warm_prompt_tokens, int measured_prompt_tokens, int block_size,
                                      const TemplateShape& shape) {
    const int shared = std::max(0, warm_prompt_tokens - std::max(0, shape.suffix_tokens));
    return reusable_tokens(shared, measured_prompt_tokens, block_size);
}

// The most a miss [B,Q] may find cached without having been served from another trial's content:
// the whole blocks of the template's shared prefix (a block of a long system header is cached by
// every earlier request). Where the template is unknown (no /tokenize), the warm requests measure
// it: each warms fresh content behind the same header, so what the least-served of them found
// cached (`warm_cached_least`, -1 when none reported) is what the header explains; without that,
// less than one block (block size unknown: nothing), the rule for templates shorter than a block.
inline int miss_cached_tokens_allowed(int measured_prompt_tokens, int block_size, const TemplateShape& shape,
                                      int warm_cached_least = -1) {
    const int n = std::max(measured_prompt_tokens, 0);
    if (shape.prefix_tokens >= 0) return reusable_tokens(shape.prefix_tokens, n, block_size);
    const int unknown_rule = std::max(block_size, 1) - 1;
    return std::max(unknown_rule, std::min(warm_cached_least, std::max(n - 1, 0)));
}

// What the least-served warm request after the run's first found cached (the first may precede any
// request with the header), or -1 when fewer than two warm requests reported a count.
inline int least_warm_cached(const std::vector<int>& warm_cached_in_run_order) {
    int least = -1;
    for (std::size_t i = 1; i < warm_cached_in_run_order.size(); ++i) {
        const int c = warm_cached_in_run_order[i];
        if (c < 0) return -1;  // a warm request without a count: the header's share is not measured
        least = least < 0 ? c : std::min(least, c);
    }
    return least;
}

// The hit's full rule (whole blocks of the warm prompt) needs the engine's block size (vLLM
// reuses whole blocks only, so 0 = unknown cannot be taken as token granularity) and the
// template's shape; without them a hit must show only more than the template explains.
inline bool hit_rule_known(int block_size, const TemplateShape& shape) { return block_size > 0 && shape.known(); }

}  // namespace kvgate
