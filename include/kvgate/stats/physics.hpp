// What a run's three arms say about the engine's costs, and which sizes would decide. Pure arithmetic.
//
// Model: a request's TTFT = fixed + per_prompt x (prompt tokens) + per_recomputed x (tokens not served
// from cache). per_prompt is the server's work on every token before the engine (tokenizing, rendering,
// copying), per_recomputed the prefill the cache saves. The three arms give three equations: cold and
// hit have the same prompt and differ only in what was recomputed, so cold - hit is the saving alone;
// hit - miss then leaves the per-prompt cost. Medians of each arm are used, so a stall moves nothing.
#pragma once

#include <cmath>
#include <optional>

namespace kvgate {

struct ArmCost {
    double ttft_ms = 0;
    double prompt_tokens = 0;
    double recomputed_tokens = 0;  // prompt tokens less those served from cache
};

struct CostModel {
    double fixed_ms = 0;
    double per_prompt_token_ms = 0;      // may be ~0 or below on engines with no per-token front end
    double per_recomputed_token_ms = 0;  // the saving per cached token
    double hit_recomputed_tokens = 0;    // what a hit recomputes whatever the sizes (Q, the template's end)
    double template_tokens = 0;          // added to every prompt's content

    double ttft(double prompt, double recomputed) const {
        return fixed_ms + per_prompt_token_ms * prompt + per_recomputed_token_ms * recomputed;
    }
    // Predicted medians at content sizes A, B, Q.
    double hit(double a, double b, double q) const {
        return ttft(a + b + q + template_tokens, hit_recomputed_tokens);
    }
    double miss(double b, double q) const { return ttft(b + q + template_tokens, b + q + template_tokens); }
    double cold(double a, double b, double q) const {
        return ttft(a + b + q + template_tokens, a + b + q + template_tokens);
    }
};

// nullopt when the arms cannot separate the two costs (cold recomputed no more than hit, or hit and
// miss prompts of one length).
inline std::optional<CostModel> fit_cost_model(const ArmCost& hit, const ArmCost& miss, const ArmCost& cold,
                                               double template_tokens) {
    const double saved = cold.recomputed_tokens - hit.recomputed_tokens;
    const double longer = hit.prompt_tokens - miss.prompt_tokens;
    if (saved <= 0 || longer <= 0) return std::nullopt;
    CostModel m;
    m.per_recomputed_token_ms = (cold.ttft_ms - hit.ttft_ms) / saved;
    m.per_prompt_token_ms =
        (hit.ttft_ms - miss.ttft_ms - m.per_recomputed_token_ms * (hit.recomputed_tokens - miss.recomputed_tokens)) /
        longer;
    m.fixed_ms = hit.ttft_ms - m.per_prompt_token_ms * hit.prompt_tokens -
                 m.per_recomputed_token_ms * hit.recomputed_tokens;
    m.hit_recomputed_tokens = hit.recomputed_tokens;
    m.template_tokens = template_tokens;
    return m;
}

// The least B (content tokens) at which the predicted miss/hit reaches `target`, A and Q held; nullopt
// when no B does (each token of B costs a miss less, relative to the hit, than the target asks).
inline std::optional<int> b_for_invalidation(const CostModel& m, double a, double q, double target) {
    // miss(B) >= target * hit(A,B,Q), linear in B: coefficient on B and the rest.
    const double coef = (m.per_prompt_token_ms + m.per_recomputed_token_ms) - target * m.per_prompt_token_ms;
    const double rest = target * m.hit(a, 0, q) - m.miss(0, q);
    if (coef <= 0) return std::nullopt;
    return static_cast<int>(std::ceil(std::max(16.0, rest / coef)));
}

// The least A at which the predicted cold/hit reaches `target`, B and Q held; nullopt when no A does.
inline std::optional<int> a_for_cache(const CostModel& m, double b, double q, double target) {
    const double coef = (m.per_prompt_token_ms + m.per_recomputed_token_ms) - target * m.per_prompt_token_ms;
    const double rest = target * m.hit(0, b, q) - m.cold(0, b, q);
    if (coef <= 0) return std::nullopt;
    return static_cast<int>(std::ceil(std::max(16.0, rest / coef)));
}

}  // namespace kvgate
