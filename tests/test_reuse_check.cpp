// The per-request reuse check on records: the plan from rendered ids, the classification of what the
// server reported, and the verdict's partial-reuse fail with the divergence or the server named.
#include <catch2/catch.hpp>

#include <set>

#include "kvgate/experiment/verdict.hpp"

using namespace kvgate;

namespace {

TokenIds range_ids(int from, int n) {
    TokenIds ids;
    for (int i = 0; i < n; ++i) ids.push_back(from + i);
    return ids;
}

TokenIds cat(TokenIds a, const TokenIds& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::string decode(const TokenIds& ids) {
    std::string s;
    for (int id : ids) s += "<" + std::to_string(id) + ">";
    return s;
}

// Trial i: BOS 2, then A (100 tokens) and B (50 tokens) of its own; hit = [A,B,Q], miss = [B,Q],
// cold = [A',B,Q] with A' 100 tokens of its own.
RenderedTrial healthy_trial(int i, const TokenIds& warm_insert = {}) {
    const TokenIds a = range_ids(1000 * (i + 1), 100), b = range_ids(1000 * (i + 1) + 500, 50),
                   q = range_ids(1000 * (i + 1) + 800, 10);
    TokenIds warm = cat(cat({2}, a), b);
    RenderedTrial t;
    t.warm = warm;
    t.warm_again = warm;
    if (!warm_insert.empty()) {  // a varying value after the first 40 tokens of A, drawn per rendering
        t.warm = cat(cat(TokenIds(warm.begin(), warm.begin() + 41), warm_insert), TokenIds(warm.begin() + 41, warm.end()));
        TokenIds other = warm_insert;
        other[0] += 1;
        t.warm_again = cat(cat(TokenIds(warm.begin(), warm.begin() + 41), other), TokenIds(warm.begin() + 41, warm.end()));
    }
    const Arm arm = scheduled_arm(i);
    const bool hit = arm == Arm::hit;
    TokenIds measured = hit               ? cat(warm, q)
                        : arm == Arm::miss ? cat(cat({2}, b), q)
                                           : cat(cat(cat({2}, range_ids(1000 * (i + 1) + 200, 100)), b), q);
    if (!warm_insert.empty() && hit) {
        TokenIds third = warm_insert;
        third[0] += 2;
        measured = cat(cat(TokenIds(measured.begin(), measured.begin() + 41), third),
                       TokenIds(measured.begin() + 41, measured.end()));
    }
    t.measured = measured;
    return t;
}

struct ReusePlan {
    std::vector<TrialReuse> trials;
    std::string block_rounding;
};

// The protocol's planning, trial by trial in schedule order.
ReusePlan plan_reuse(const std::vector<std::optional<RenderedTrial>>& rendered, int block, TemplateShape shape) {
    ReusePlanner planner(block, shape, decode);
    ReusePlan plan;
    for (std::size_t i = 0; i < rendered.size(); ++i)
        plan.trials.push_back(planner.add(rendered[i], scheduled_arm(static_cast<int>(i))));
    plan.block_rounding = planner.block_rounding_note();
    return plan;
}

PhaseResult run_with(const ReusePlan& plan, const std::vector<int>& reported, int block) {
    PhaseResult r;
    r.engine.block_size = block;
    for (std::size_t i = 0; i < plan.trials.size(); ++i) {
        Trial t;
        t.index = static_cast<int>(i);
        t.arm = scheduled_arm(t.index);
        t.ttft_ms = t.arm == Arm::hit ? 100 + static_cast<double>(i % 3) : 300 + static_cast<double>(i % 5);
        t.measured.usage = {t.arm == Arm::miss ? 61 : 161, 50, reported[i]};
        t.reuse = plan.trials[i];
        classify_trial_reuse(t, block);
        r.trials.push_back(t);
    }
    return r;
}

}  // namespace

TEST_CASE("the schedule runs rounds of every arm, balanced over six rounds", "[reuse_check]") {
    int at[arm_count][arm_count] = {};       // arm x position within the round
    for (int i = 0; i < 6 * arm_count; ++i) {
        ++at[static_cast<int>(scheduled_arm(i))][i % arm_count];
        if (i % arm_count == arm_count - 1) {  // a whole round: one trial of each arm
            std::set<Arm> round;
            for (int k = i - arm_count + 1; k <= i; ++k) round.insert(scheduled_arm(k));
            CHECK(round.size() == arm_count);
        }
    }
    for (int arm = 0; arm < arm_count; ++arm)
        for (int pos = 0; pos < arm_count; ++pos) CHECK(at[arm][pos] == 2);
    // Within rounds each ordered pair of distinct arms is adjacent equally often (a Williams design).
    int within[arm_count][arm_count] = {};
    for (int i = 0; i < 6 * arm_count; ++i)
        if (i % arm_count != 0) ++within[static_cast<int>(scheduled_arm(i))][static_cast<int>(scheduled_arm(i - 1))];
    for (int a = 0; a < arm_count; ++a)
        for (int b = 0; b < arm_count; ++b)
            if (a != b) CHECK(within[a][b] == 2);
}

TEST_CASE("a healthy run expects the warm prompt's whole blocks on hits and nothing on misses", "[reuse_check]") {
    std::vector<std::optional<RenderedTrial>> rendered;
    for (int i = 0; i < 4; ++i) rendered.push_back(healthy_trial(i));
    const ReusePlan plan = plan_reuse(rendered, 16, TemplateShape{1, 0});
    REQUIRE(plan.trials.size() == 4);
    CHECK(plan.trials[0].checked);
    CHECK(plan.trials[0].expected == 144);  // warm 151 tokens: 9 whole blocks of 16
    CHECK(plan.trials[0].shared == 144);
    CHECK(plan.trials[0].divergence_at == -1);
    CHECK(plan.trials[1].expected == 0);
    CHECK(plan.trials[1].allowed == 0);  // the miss shares only BOS with its warm prompt: under a block
    CHECK(plan.trials[2].expected == 0);  // the cold request as the miss: only what the template explains
    CHECK(plan.trials[2].allowed == 0);
    CHECK(plan.block_rounding.empty());  // 7 of 151 tokens hidden: not worth a line
    const ReusePlan coarse = plan_reuse(rendered, 64, TemplateShape{1, 0});
    CHECK(coarse.trials[0].expected == 128);
    CHECK_THAT(coarse.block_rounding, Catch::Contains("block size 64 keeps 23 of the warm prompt's 151 tokens"));

    const auto r = run_with(plan, {144, 0, 0, 0}, 16);
    CHECK(r.trials[0].reuse.reported_class == "full");
    CHECK(r.trials[1].reuse.reported_class == "none");
    CHECK(r.trials[2].reuse.reported_class == "none");
    CHECK_FALSE(reuse_shortfall(r));
}

TEST_CASE("a varying value in the rendered warm prompt is named and partial reuse fails the verdict",
          "[reuse_check]") {
    std::vector<std::optional<RenderedTrial>> rendered;
    for (int i = 0; i < 6; ++i) rendered.push_back(healthy_trial(i, {77, 78}));
    const ReusePlan plan = plan_reuse(rendered, 16, TemplateShape{1, 0});
    CHECK(plan.trials[0].expected == 144);
    CHECK(plan.trials[0].shared == 32);  // the renderings agree on 41 tokens: two whole blocks
    CHECK(plan.trials[0].divergence_at == 41);
    CHECK_THAT(plan.trials[0].divergence, Catch::Contains("the warm prompt rendered twice differs at token 41") &&
                                              Catch::Contains("<77>") && Catch::Contains("<78>"));

    auto r = run_with(plan, {32, 0, 0, 0, 0, 32}, 16);  // hits: trials 1 and 6
    CHECK(r.trials[0].reuse.reported_class == "partial");
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::fail);
    CHECK_THAT(r.verdict.reason, Catch::Contains("2 of 2 hit-arm requests reused less") &&
                                     Catch::Contains("reused 32 of the 144 tokens expected") &&
                                     Catch::Contains("differs at token 41"));
    CHECK_THAT(r.verdict.fix, Catch::Contains("at token 41") && Catch::Contains("after the shared prefix"));

    // The requests themselves are rendered at other moments than the two /tokenize calls and may share
    // less (a time of day whose seconds changed): reusing less than those two share is no server fault.
    auto later = run_with(plan, {16, 0, 0, 0, 0, 0}, 16);
    decide(later, 10, 0.95);
    CHECK(later.verdict.outcome == Outcome::fail);
    CHECK_THAT(later.verdict.reason, Catch::Contains("differs at token 41") && !Catch::Contains("evicted"));
    CHECK_THAT(later.verdict.fix, !Catch::Contains("KV cache"));
}

TEST_CASE("renderings that agree put a shortfall on the server with the Prometheus counters", "[reuse_check]") {
    std::vector<std::optional<RenderedTrial>> rendered;
    for (int i = 0; i < 6; ++i) rendered.push_back(healthy_trial(i));
    const ReusePlan plan = plan_reuse(rendered, 16, TemplateShape{1, 0});
    auto r = run_with(plan, {144, 0, 0, 0, 0, 64}, 16);
    r.counters = {true, 1000, 352};
    decide(r, 10, 0.95);
    CHECK(r.verdict.outcome == Outcome::fail);
    CHECK_THAT(r.verdict.reason, Catch::Contains("1 of 2") && Catch::Contains("trial 6 reused 64 of the 144") &&
                                     Catch::Contains("evicted or did not store") &&
                                     Catch::Contains("hits +352 of queries +1000"));
    CHECK_THAT(r.verdict.fix, Catch::Contains("KV cache"));
}

TEST_CASE("without ids or without a block size nothing is checked", "[reuse_check]") {
    std::vector<std::optional<RenderedTrial>> rendered = {healthy_trial(0), std::nullopt};
    const ReusePlan unknown_block = plan_reuse(rendered, 0, TemplateShape{1, 0});
    CHECK_FALSE(unknown_block.trials[0].checked);
    const ReusePlan plan = plan_reuse(rendered, 16, TemplateShape{1, 0});
    CHECK(plan.trials[0].checked);
    CHECK_FALSE(plan.trials[1].checked);
    Trial t;
    t.reuse = plan.trials[1];
    t.measured.usage.cached_tokens = 5;
    classify_trial_reuse(t, 16);
    CHECK(t.reuse.reported_class.empty());
}
