// The three arms as costs per token, and the sizes that would decide.
#include <catch2/catch.hpp>

#include "kvgate/stats/physics.hpp"

using namespace kvgate;

namespace {

// An engine whose costs are known: 5 ms a request, 4 us a prompt token, 20 us a recomputed token.
double ttft(double prompt, double recomputed) { return 5 + 0.004 * prompt + 0.020 * recomputed; }

}  // namespace

TEST_CASE("the three arms recover the per-request, per-prompt-token and per-recomputed-token costs", "[physics]") {
    // A 3000, B 500, Q 32, template 0; the hit reuses 3488 of 3532 tokens.
    const ArmCost hit{ttft(3532, 44), 3532, 44}, miss{ttft(532, 532), 532, 532}, cold{ttft(3532, 3532), 3532, 3532};
    const auto m = fit_cost_model(hit, miss, cold, 0);
    REQUIRE(m);
    CHECK(m->per_recomputed_token_ms == Approx(0.020));
    CHECK(m->per_prompt_token_ms == Approx(0.004));
    CHECK(m->fixed_ms == Approx(5));
    CHECK(m->hit(3000, 500, 32) == Approx(hit.ttft_ms));
    CHECK(m->miss(500, 32) == Approx(miss.ttft_ms));
    // miss/hit at A 3000: the B that makes it 1.5 is found, and predicts 1.5.
    const auto b = b_for_invalidation(*m, 3000, 32, 1.5);
    REQUIRE(b);
    CHECK(m->miss(*b, 32) / m->hit(3000, *b, 32) == Approx(1.5).epsilon(0.01));
    const auto a = a_for_cache(*m, 500, 32, 3.0);
    REQUIRE(a);
    CHECK(m->cold(*a, 500, 32) / m->hit(*a, 500, 32) == Approx(3.0).epsilon(0.01));
}

TEST_CASE("no size can decide when the server's per-token work outweighs the prefill saved", "[physics]") {
    CostModel m;
    m.fixed_ms = 5;
    m.per_prompt_token_ms = 0.02;
    m.per_recomputed_token_ms = 0.001;
    CHECK_FALSE(b_for_invalidation(m, 512, 32, 1.2));
    CHECK_FALSE(fit_cost_model({10, 800, 800}, {5, 288, 288}, {10, 800, 800}, 0));  // cold recomputed no more
}
