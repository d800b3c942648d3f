// Expected prefix-cache reuse per request, from token ids and the engine's block size, and the first
// token where two renderings differ. Pure arithmetic on ids: knows no engine, no records.
//
// The rules, and where they come from:
// - Reuse comes in whole blocks of `block_size` tokens; block size 0 or 1 means token granularity
//   (llama.cpp reuses any token prefix of a slot's KV).
// - The last prompt token is always computed, because its logits give the first output token: a
//   prompt of n tokens reuses at most n - 1. vLLM, vllm/v1/core/kv_cache_manager.py,
//   KVCacheManager.get_computed_blocks: `max_cache_hit_length = request.num_tokens - 1`, and the
//   hit is found in full blocks only (find_longest_cache_hit), so a full repeat of an n-token prompt
//   hits floor((n - 1) / block) * block (read at vllm-project/vllm 003df29). llama.cpp reports
//   cached = n - 1 on an exact repeat (measured here with the fixture's llama-server, cmake/llamacpp/).
// - A hit must reuse the whole blocks of its warm prompt's content: the warm prompt less what the
//   template puts after the last message (a chat template's end-of-turn and generation prompt,
//   "<|im_end|>\n<|im_start|>assistant\n"), which the measured prompt replaces with Q. The protocol
//   makes that content a token prefix of the measured prompt; where the rendered ids are not (a
//   template that inserts a time), the server can reuse only the blocks before the first differing
//   token. Anything a request shares with prompts sent earlier (the chat template's header, a system
//   prompt, a BOS token) it may reuse, floored the same way; beyond that is contamination.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvgate/model/format.hpp"
#include "kvgate/model/utf8.hpp"

namespace kvgate {

using TokenIds = std::vector<int>;

// Tokens per reuse unit: 1 for block size 0 or 1 (token granularity).
inline int reuse_granularity(int block_size) {
    if (block_size < 0)
        throw std::invalid_argument("block size " + std::to_string(block_size) +
                                    " is negative: give the engine's KV block size, or 0 when it reuses single tokens");
    return block_size <= 1 ? 1 : block_size;
}

inline int common_prefix_length(const TokenIds& a, const TokenIds& b) {
    const auto pair = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
    return static_cast<int>(pair.first - a.begin());
}

// The tokens `a` and `b` end with alike, at most `limit`.
inline int common_suffix_length(const TokenIds& a, const TokenIds& b, int limit) {
    const auto pair = std::mismatch(a.rbegin(), a.rend(), b.rbegin(), b.rend());
    return std::min(static_cast<int>(pair.first - a.rbegin()), std::max(limit, 0));
}

// What a prompt of `prompt_tokens` can reuse when its first `shared` tokens are cached: capped at
// prompt_tokens - 1 (the last token is always computed), floored to whole blocks.
inline int reusable_tokens(int shared, int prompt_tokens, int block_size) {
    const int g = reuse_granularity(block_size);
    if (shared < 0 || prompt_tokens < 0)
        throw std::invalid_argument("reusable_tokens: shared (" + std::to_string(shared) + ") and prompt tokens (" +
                                    std::to_string(prompt_tokens) + ") must not be negative");
    const int capped = std::min(shared, std::max(prompt_tokens - 1, 0));
    return capped / g * g;
}

// The longest token prefix `prompt` shares with any of `earlier` (0 when there is none).
inline int longest_shared_prefix(const TokenIds& prompt, const std::vector<TokenIds>& earlier) {
    int best = 0;
    for (const auto& e : earlier) best = std::max(best, common_prefix_length(prompt, e));
    return best;
}

// Reuse bounds for one measured request, in tokens.
struct ReuseExpectation {
    int expected = 0;         // a hit: the whole blocks of its warm prompt's content, which the protocol
                              // means the measured prompt to extend (0 for a miss)
    int shared = 0;           // the whole blocks of the warm prompt that do prefix the measured prompt as
                              // rendered; below `expected` when the renderings diverge (a varying value)
    int may = 0;              // the most any earlier prompt allows; more is contamination
    int template_shared = 0;  // what the prompts other than its own warm prompt explain (template, BOS)
    int prompt_tokens = 0;
    int block_size = 0;
};

// A hit: `measured` after its `warm` prompt, whose last `warm_suffix_tokens` are the template's after
// the content (0 without a template); `others` = every other prompt the server saw before (earlier
// trials, the miss arm; include generated tokens where the engine caches them).
inline ReuseExpectation expect_hit(const TokenIds& warm, const TokenIds& measured, const std::vector<TokenIds>& others,
                                   int block_size, int warm_suffix_tokens) {
    if (warm_suffix_tokens < 0 || warm_suffix_tokens > static_cast<int>(warm.size()))
        throw std::invalid_argument("expect_hit: the template suffix (" + std::to_string(warm_suffix_tokens) +
                                    " tokens) must lie within the warm prompt (" + std::to_string(warm.size()) + ")");
    ReuseExpectation e;
    e.prompt_tokens = static_cast<int>(measured.size());
    e.block_size = block_size;
    e.expected = reusable_tokens(static_cast<int>(warm.size()) - warm_suffix_tokens, e.prompt_tokens, block_size);
    e.shared = reusable_tokens(common_prefix_length(warm, measured), e.prompt_tokens, block_size);
    e.template_shared = reusable_tokens(longest_shared_prefix(measured, others), e.prompt_tokens, block_size);
    e.may = std::max(e.shared, e.template_shared);
    return e;
}

// A miss: nothing is expected; what it shares with the earlier prompts is allowed.
inline ReuseExpectation expect_miss(const TokenIds& measured, const std::vector<TokenIds>& earlier, int block_size) {
    ReuseExpectation e;
    e.prompt_tokens = static_cast<int>(measured.size());
    e.block_size = block_size;
    e.template_shared = reusable_tokens(longest_shared_prefix(measured, earlier), e.prompt_tokens, block_size);
    e.may = e.template_shared;
    return e;
}

// Reported cached tokens against the expectation. No tolerance: both sides count the same ids the
// server rendered and engines report reuse exactly, so a difference of one token is real (a BOS the
// client's rendering lacks, a block the engine dropped); the divergence finder then names it.
enum class ReuseClass {
    full,           // reported >= expected > 0 (and <= may)
    partial,        // more than the template explains, less than expected: a regression
    template_only,  // 0 < reported <= template_shared, short of expected: only the template was reused
    none,           // nothing reused
    excess,         // more than any earlier prompt allows: contamination, the arm is not what it claims
    unknown         // the server did not report (reported < 0)
};

inline const char* to_string(ReuseClass c) {
    switch (c) {
        case ReuseClass::full: return "full";
        case ReuseClass::partial: return "partial";
        case ReuseClass::template_only: return "template-only";
        case ReuseClass::none: return "none";
        case ReuseClass::excess: return "excess";
        case ReuseClass::unknown: return "unknown";
    }
    return "?";
}

// For a miss (expected = 0) the answer is none, template-only or excess; only excess is wrong there.
// For a hit, anything but full is a regression (excess: contamination).
inline ReuseClass classify_reuse(int reported, const ReuseExpectation& e) {
    if (reported < 0) return ReuseClass::unknown;
    if (reported > e.may) return ReuseClass::excess;
    if (e.expected > 0 && reported >= e.expected) return ReuseClass::full;
    if (reported == 0) return ReuseClass::none;
    if (reported <= e.template_shared) return ReuseClass::template_only;
    return ReuseClass::partial;
}

// Why a hit reused less than expected: the prompts as rendered diverge before the warm prompt's end
// (name the token with find_divergence), the server kept less than the prompts share (evicted or
// never stored: Prometheus counters are the evidence), or both.
enum class Shortfall { none, rendering, server, both };

inline const char* to_string(Shortfall s) {
    switch (s) {
        case Shortfall::none: return "none";
        case Shortfall::rendering: return "rendering";
        case Shortfall::server: return "server";
        case Shortfall::both: return "both";
    }
    return "?";
}

// Meaningful for a reported count (>= 0) at or below `may`; an excess is no shortfall.
inline Shortfall shortfall_cause(int reported, const ReuseExpectation& e) {
    if (reported < 0 || reported >= e.expected) return Shortfall::none;
    const bool rendering = e.shared < e.expected;
    const bool server = reported < e.shared;
    return rendering && server ? Shortfall::both : rendering ? Shortfall::rendering : Shortfall::server;
}


// How much of the warm prompt block rounding alone keeps from being reused by the measured prompt.
struct BlockRounding {
    int block_size = 0;
    int warm_tokens = 0;
    int reusable_by_tokens = 0;  // what token granularity would reuse
    int reusable = 0;            // what whole blocks reuse
    int hidden = 0;              // reusable_by_tokens - reusable
    double hidden_fraction = 0;  // hidden / warm_tokens
    bool notable = false;        // hidden_fraction >= the caller's threshold
    std::string message;         // empty when nothing is hidden
};

inline BlockRounding block_rounding(const TokenIds& warm, const TokenIds& measured, int block_size,
                                    double notable_fraction = 0.10) {
    BlockRounding r;
    r.block_size = block_size;
    r.warm_tokens = static_cast<int>(warm.size());
    const int shared = common_prefix_length(warm, measured);
    const int n = static_cast<int>(measured.size());
    r.reusable_by_tokens = reusable_tokens(shared, n, 1);
    r.reusable = reusable_tokens(shared, n, block_size);
    r.hidden = r.reusable_by_tokens - r.reusable;
    r.hidden_fraction = r.warm_tokens > 0 ? static_cast<double>(r.hidden) / r.warm_tokens : 0;
    r.notable = r.hidden > 0 && r.hidden_fraction >= notable_fraction;
    if (r.hidden > 0) {
        const int g = reuse_granularity(block_size);
        r.message = detail::fmt("block size %.0f keeps %.0f of the warm prompt's %.0f tokens (%.1f%%) from "
                                      "being reused: the cache reuses whole blocks only, %.0f",
                                      g, r.hidden, r.warm_tokens, 100 * r.hidden_fraction, r.reusable / g) +
                    detail::fmt(" x %.0f = %.0f tokens; a warm prompt of %.0f tokens (the next block boundary) would lose none", g,
                                      r.reusable, (r.reusable / g + 1) * g);
    }
    return r;
}

// ---- Divergence -------------------------------------------------------------------------------------

// Text for ids, as the engine's tokenizer decodes them.
using Detokenize = std::function<std::string(const std::vector<int>&)>;

namespace reuse_detail {

// The decoded ids [from, to), with an ellipsis on each side that was cut.
inline std::string window_text(const TokenIds& ids, std::size_t from, std::size_t to, const Detokenize& detokenize) {
    to = std::min(to, ids.size());
    from = std::min(from, to);
    const std::string text = printable(detokenize(TokenIds(ids.begin() + from, ids.begin() + to)));
    return (from > 0 ? "\xe2\x80\xa6" : "") + text + (to < ids.size() ? "\xe2\x80\xa6" : "");
}

}  // namespace reuse_detail

struct Divergence {
    bool differs = false;   // false: the sequences are equal
    int position = 0;       // 0-based index of the first differing token; tokens before it agree
    bool a_ended = false;   // `a` is a proper prefix of `b`
    bool b_ended = false;   // `b` is a proper prefix of `a`
    std::string context_a;  // decoded tokens around `position` in each sequence
    std::string context_b;
    std::string message;
};

// The first token where `a` and `b` differ, and the text around it (`context_tokens` on each side,
// the same start in both). Exceptions from `detokenize` propagate: the caller decides what a failed
// decode means.
inline Divergence find_divergence(const TokenIds& a, const TokenIds& b, const Detokenize& detokenize,
                                  std::size_t context_tokens = 8, const std::string& subject = "the rendered prompt") {
    if (!detokenize) throw std::invalid_argument("find_divergence: give a detokenize function");
    Divergence d;
    const std::size_t pos = static_cast<std::size_t>(common_prefix_length(a, b));
    if (pos == a.size() && pos == b.size()) return d;
    d.differs = true;
    d.position = static_cast<int>(pos);
    d.a_ended = pos == a.size();
    d.b_ended = pos == b.size();
    const std::size_t from = pos > context_tokens ? pos - context_tokens : 0;
    d.context_a = reuse_detail::window_text(a, from, pos + context_tokens, detokenize);
    d.context_b = reuse_detail::window_text(b, from, pos + context_tokens, detokenize);
    const std::string at = subject + " differs at token " + std::to_string(pos) + " (the first " +
                           std::to_string(pos) + " agree): ";
    if (d.a_ended)
        d.message = at + "the first ends there ('" + d.context_a + "'), the second goes on: '" + d.context_b + "'";
    else if (d.b_ended)
        d.message = at + "the second ends there ('" + d.context_b + "'), the first goes on: '" + d.context_a + "'";
    else
        d.message = at + "'" + d.context_a + "' vs '" + d.context_b + "'";
    return d;
}

}  // namespace kvgate
