// The per-request reuse check, on records: before timing, each trial's expected reuse from the ids the
// engine rendered (reuse.hpp's arithmetic); after each measured request, what it reported against that;
// for the verdict, the hits that reused less than expected, with the divergence or the server named.
// The engine calls (tokenize, detokenize) are the protocol's; everything here is pure.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "kvgate/engine/reuse.hpp"
#include "kvgate/model/records.hpp"

namespace kvgate {

// The arm of the i-th trial of a run. Trials run in rounds of one trial per arm; the rounds cycle
// through a Williams design for three arms (six orders), so over every six rounds each arm takes
// each position twice and follows each other arm equally often: drift and carry-over hit all alike.
inline Arm scheduled_arm(int index) {
    static constexpr Arm orders[6][arm_count] = {
        {Arm::hit, Arm::miss, Arm::cold}, {Arm::miss, Arm::cold, Arm::hit}, {Arm::cold, Arm::hit, Arm::miss},
        {Arm::cold, Arm::miss, Arm::hit}, {Arm::hit, Arm::cold, Arm::miss}, {Arm::miss, Arm::hit, Arm::cold}};
    return orders[(index / arm_count) % 6][index % arm_count];
}

// One trial's prompts as the engine renders them: the warm prompt twice (a template that inserts a
// varying value renders it differently each time) and the measured prompt.
struct RenderedTrial {
    TokenIds warm, warm_again, measured;
};

// The tokens the template puts after a prompt's content (its end of turn, the generation prompt): the
// shape's suffix where the probes measured one, else what this trial's warm and measured prompts end
// with alike (their contents end in '.' and '?', so no content token is counted).
inline int warm_suffix_tokens(const RenderedTrial& ids, const TemplateShape& shape) {
    const int most = static_cast<int>(std::min(ids.warm.size(), ids.measured.size()));
    if (shape.suffix_tokens >= 0) return std::min(shape.suffix_tokens, most);
    return common_suffix_length(ids.warm, ids.measured, most);
}

// Expected reuse for each trial of a run, in run order. A trial whose ids are unknown (nullopt: the engine
// could not tokenize) is unchecked. `block_size` as the engine reports it; 0 (unknown) leaves every trial
// unchecked, because token granularity would expect more than a block-based cache can reuse (an engine
// that reuses single tokens reports 1). `shape`: the template's, as the protocol measured it (unknown: -1).
// A hit must reuse its warm prompt's whole blocks; a miss or a cold request at most what earlier prompts
// explain (the template).
class ReusePlanner {
public:
    ReusePlanner(int block_size, TemplateShape shape, Detokenize detokenize)
        : block_size_(block_size), shape_(shape), detokenize_(std::move(detokenize)) {}

    TrialReuse add(const std::optional<RenderedTrial>& ids, Arm arm) {
        TrialReuse tr;
        if (!ids) return tr;  // an unrendered trial's prompts stay out of `earlier_`: its checks are off anyway
        const bool hit = arm == Arm::hit;
        if (block_size_ > 0) {
            const ReuseExpectation e = hit ? expect_hit(ids->warm, ids->measured, earlier_, block_size_,
                                                        warm_suffix_tokens(*ids, shape_))
                                           : [&] {
                                                 auto with_warm = earlier_;
                                                 with_warm.push_back(ids->warm);
                                                 return expect_miss(ids->measured, with_warm, block_size_);
                                             }();
            tr.checked = true;
            tr.expected = e.expected;
            tr.shared = e.shared;
            tr.allowed = e.may;
            tr.template_shared = e.template_shared;
            if (hit) {
                Divergence d;
                tr.rendering_varies = ids->warm != ids->warm_again;
                if (tr.rendering_varies)
                    d = find_divergence(ids->warm, ids->warm_again, detokenize_, 8, "the warm prompt rendered twice");
                else if (e.shared < e.expected)
                    d = find_divergence(ids->warm, ids->measured, detokenize_, 8,
                                        "the warm prompt and the measured prompt, as rendered,");
                if (d.differs) {
                    tr.divergence_at = d.position;
                    tr.divergence = d.message;
                }
                if (!rounding_seen_) {
                    rounding_seen_ = true;
                    const BlockRounding br = block_rounding(ids->warm, ids->measured, block_size_);
                    if (br.notable) block_rounding_ = br.message;
                }
            }
        }
        earlier_.push_back(ids->warm);
        earlier_.push_back(ids->measured);
        return tr;
    }

    // reuse.hpp's block-rounding diagnostic for the first hit, where notable (10 % of the warm prompt
    // or more), else "".
    const std::string& block_rounding_note() const { return block_rounding_; }

private:
    int block_size_;
    TemplateShape shape_;
    Detokenize detokenize_;
    std::vector<TokenIds> earlier_;  // every prompt the server saw before the current measured one
    bool rounding_seen_ = false;
    std::string block_rounding_;
};

inline ReuseExpectation expectation_of(const TrialReuse& tr, int prompt_tokens, int block_size) {
    ReuseExpectation e;
    e.expected = tr.expected;
    e.shared = tr.shared;
    e.may = tr.allowed;
    e.template_shared = tr.template_shared;
    e.prompt_tokens = prompt_tokens;
    e.block_size = block_size;
    return e;
}

// Classifies the measured request's reported cached tokens against its plan (no-op when unchecked).
inline void classify_trial_reuse(Trial& t, int block_size) {
    if (!t.reuse.checked) return;
    const auto e = expectation_of(t.reuse, t.measured.usage.prompt_tokens, block_size);
    t.reuse.reported_class = to_string(classify_reuse(t.measured.usage.cached_tokens, e));
}

// A fail for the verdict: measured hits that reused some, but fewer tokens than expected.
struct ReuseShortfall {
    int count = 0, checked = 0;
    std::string reason, fix;
};

// nullopt when every checked hit reused what it should (or none was checked). Covers the hits that
// reused part, and those that reused nothing where the renderings diverge (a time of day at the
// template's start): the divergence is their cause. A hit that reused nothing from renderings that
// agree is the verdict's own "no cached tokens" fail.
inline std::optional<ReuseShortfall> reuse_shortfall(const PhaseResult& r) {
    ReuseShortfall s;
    const Trial* first = nullptr;
    bool rendering = false, server = false;
    for (const Trial* t : r.measured(Arm::hit)) {
        if (!t->reuse.checked || t->measured.usage.cached_tokens < 0) continue;
        ++s.checked;
        const auto& c = t->reuse.reported_class;
        const bool diverged = t->reuse.divergence_at >= 0 || t->reuse.shared < t->reuse.expected;
        if (c != "partial" && c != "template-only" && !(c == "none" && diverged)) continue;
        ++s.count;
        if (!first) first = t;
        const auto cause =
            shortfall_cause(t->measured.usage.cached_tokens, expectation_of(t->reuse, t->measured.usage.prompt_tokens,
                                                                            r.engine.block_size));
        rendering = rendering || cause == Shortfall::rendering || cause == Shortfall::both ||
                    t->reuse.divergence_at >= 0;
        // Renderings that vary (a time of day) explain any shortfall: the requests, rendered at other
        // moments than the two /tokenize calls, may share fewer tokens, so the server is not blamed.
        server = server || (!t->reuse.rendering_varies && (cause == Shortfall::server || cause == Shortfall::both));
    }
    if (s.count == 0) return std::nullopt;
    const TrialReuse& f = first->reuse;
    s.reason = std::to_string(s.count) + " of " + std::to_string(s.checked) +
               " hit-arm requests reused less of the warmed prefix than expected: trial " + std::to_string(first->number()) +
               " reused " + std::to_string(first->measured.usage.cached_tokens) + " of the " +
               std::to_string(f.expected) + " tokens expected (whole blocks of " + std::to_string(r.engine.block_size) +
               " of its warm prompt; " + f.reported_class + ")";
    if (rendering) {
        s.reason += ": " + (f.divergence.empty() ? std::string("the rendered prompts diverge") : f.divergence);
        s.fix = "the prompt as the server renders it changes between requests";
        if (f.divergence_at >= 0) s.fix += " at token " + std::to_string(f.divergence_at);
        s.fix += ": move whatever varies (a time, a request id, a user name in the chat template or system prompt) "
                 "after the shared prefix, or drop it";
    }
    if (server) {
        char buf[256];
        std::snprintf(buf, sizeof buf, "Prometheus prefix-cache hits +%.0f of queries +%.0f tokens over the run",
                      r.counters.hits, r.counters.queries);
        s.reason += std::string(rendering ? "; beyond that, " : ": ") + "the renderings share " +
                    std::to_string(f.shared) +
                    " tokens, so the server evicted or did not store the blocks (" +
                    (r.counters.available ? std::string(buf) : std::string("no Prometheus counters")) + ")";
        s.fix += std::string(s.fix.empty() ? "" : "; ") +
                 "give the KV cache room for the warmed prefix (a larger KV cache: --gpu-memory-utilization, "
                 "VLLM_CPU_KVCACHE_SPACE, --num-gpu-blocks-override; fewer concurrent requests) and check that "
                 "prefix caching keeps blocks between requests";
    }
    return s;
}

}  // namespace kvgate
