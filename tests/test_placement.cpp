#include <catch2/catch.hpp>

#include <cmath>

#include "kvgate/model/placement.hpp"

using namespace kvgate;

namespace {
// Snapshots of a fleet: {queries, hits} per replica, all readable.
std::vector<ReplicaCounters> fleet(std::vector<std::pair<double, double>> counters) {
    std::vector<ReplicaCounters> out;
    for (const auto& [q, h] : counters) out.push_back({true, q, h});
    return out;
}
Placement on(int replica) {
    Placement p;
    p.outcome = PlacementOutcome::served;
    p.replica = replica;
    p.replicas = {replica};
    return p;
}
TrialPlacement trial(Placement warm, Placement measured, bool hit_arm = true) {
    return {hit_arm, std::move(warm), std::move(measured)};
}
}  // namespace

TEST_CASE("the replica whose queries counter moved served the request, with its deltas", "[placement]") {
    // As observed through vllm-router: a 726-token warm-up on replica 0, replica 1 untouched.
    const auto p = attribute(fleet({{1000, 640}, {50, 0}}), fleet({{1757, 1280}, {50, 0}}));
    REQUIRE(p.outcome == PlacementOutcome::served);
    CHECK(p.placed());
    CHECK(p.replica == 0);
    CHECK(p.queried_tokens == 757);
    CHECK(p.hit_tokens == 640);
    CHECK(describe(p) == "replica 0");

    const auto q = attribute(fleet({{1, 0}, {2, 0}, {3, 0}}), fleet({{1, 0}, {2, 0}, {35, 0}}));
    CHECK(q.replica == 2);
    CHECK(q.hit_tokens == 0);  // a miss is still a placement
}

TEST_CASE("a request that cannot be placed says why and names no replica", "[placement]") {
    const auto none = attribute(fleet({{10, 0}, {20, 0}}), fleet({{10, 0}, {20, 0}}));
    CHECK(none.outcome == PlacementOutcome::none_moved);
    CHECK_FALSE(none.placed());
    CHECK(none.replica == -1);
    CHECK(describe(none) == "not placed: no replica's prefix_cache_queries_total moved");

    const auto several = attribute(fleet({{10, 0}, {20, 0}, {30, 0}}), fleet({{15, 0}, {20, 0}, {31, 0}}));
    CHECK(several.outcome == PlacementOutcome::several_moved);
    CHECK(several.replica == -1);
    CHECK(several.replicas == std::vector<int>{0, 2});
    CHECK(describe(several) == "not placed: replicas 0 and 2 all moved (other traffic or overlapping requests)");

    // A hits counter that moves without the queries counter is no placement (hits <= queries).
    CHECK(attribute(fleet({{10, 0}}), fleet({{10, 5}})).outcome == PlacementOutcome::none_moved);

    auto unreadable_after = fleet({{10, 0}, {20, 0}});
    unreadable_after[1].available = false;
    const auto control = attribute(fleet({{10, 0}, {20, 0}}), fleet({{99, 0}, {20, 0}}));
    CHECK(control.placed());  // the same move with every replica readable is placed
    unreadable_after[0].queries = 99;
    const auto blind = attribute(fleet({{10, 0}, {20, 0}}), unreadable_after);
    CHECK(blind.outcome == PlacementOutcome::unreadable);
    CHECK(blind.replicas == std::vector<int>{1});

    // A restarted replica starts its counters from zero: its delta means nothing.
    const auto reset = attribute(fleet({{10, 0}, {500, 200}}), fleet({{40, 0}, {0, 0}}));
    CHECK(reset.outcome == PlacementOutcome::counter_reset);
    CHECK(reset.replicas == std::vector<int>{1});
    CHECK(std::string(to_string(reset.outcome)) == "counter_reset");
}

TEST_CASE("snapshots over different replica lists are misuse", "[placement]") {
    CHECK_THROWS_WITH(attribute(fleet({{1, 0}, {2, 0}}), fleet({{1, 0}, {2, 0}, {3, 0}})),
                      Catch::Contains("2 replica snapshot(s) before the request and 3 after"));
    CHECK_THROWS_AS(attribute({}, {}), std::invalid_argument);
    CHECK_THROWS_WITH(summarize_placement({}, 0), Catch::Contains("KVGATE_FLEET_REPLICA_URLS"));
    CHECK_THROWS_WITH(summarize_placement({trial(on(0), on(3))}, 2), Catch::Contains("replica 3 in a fleet of 2"));
}

TEST_CASE("queries that left their warm-up's replica fail the fleet check, named and counted", "[placement]") {
    // round_robin with 2 replicas, sequential: every query lands on the other replica.
    std::vector<TrialPlacement> trials;
    for (int i = 0; i < 7; ++i) trials.push_back(trial(on(i % 2), on((i + 1) % 2)));
    for (int i = 0; i < 3; ++i) trials.push_back(trial(on(1), on(1)));
    trials.push_back(trial(on(0), on(1), /*hit_arm=*/false));  // the miss arm's placement is no failure
    const auto s = summarize_placement(trials, 2);
    CHECK(s.hit_trials == 10);
    CHECK(s.moved == 7);
    CHECK(s.same == 3);
    CHECK(s.unplaced == 0);
    CHECK(s.check() == FleetPlacementCheck::moved);
    CHECK(s.message() == "7 of 10 queries went to another replica than their warm-up");
    CHECK(s.reuse_rate() == Approx(0.3));
    CHECK(s.chance_rate() == Approx(0.5));
    CHECK(s.per_replica[0].requests + s.per_replica[1].requests == 22);

    // One moved and one unplaced: the move decides, the unplaced one is still said.
    Placement lost;
    const auto mixed = summarize_placement({trial(on(0), on(1)), trial(on(0), lost), trial(on(0), on(0))}, 2);
    CHECK(mixed.check() == FleetPlacementCheck::moved);
    CHECK(mixed.message() ==
          "1 of 3 queries went to another replica than their warm-up; 1 of 3 queries could not be placed "
          "(warm-up or query not attributed to one replica)");
}

TEST_CASE("locality holds only when every hit-arm query was placed on its warm-up's replica", "[placement]") {
    std::vector<TrialPlacement> trials(10, trial(on(0), on(0)));
    auto s = summarize_placement(trials, 2);
    CHECK(s.check() == FleetPlacementCheck::local);
    CHECK(s.message() == "10 of 10 queries went to the replica of their warm-up");
    CHECK(s.reuse_rate() == 1.0);
    CHECK(s.p_by_chance() == Approx(std::pow(0.5, 10)));
    CHECK(s.reuse_line() ==
          "fleet reuse 100% (10 of 10 placed queries) vs 50% by chance with 2 replicas; P(>= 10 by chance) = 0.000977");

    trials[4].measured = Placement{};  // one query no counter saw
    s = summarize_placement(trials, 2);
    CHECK(s.check() == FleetPlacementCheck::unplaced);
    CHECK(s.message() ==
          "1 of 10 queries could not be placed (warm-up or query not attributed to one replica); cache locality "
          "unverified");
    CHECK(s.placed() == 9);

    const auto empty = summarize_placement({trial(on(0), on(1), false)}, 2);
    CHECK(empty.check() == FleetPlacementCheck::unplaced);
    CHECK(empty.message() == "no hit-arm trial to place");
    CHECK(std::isnan(empty.reuse_rate()));
    CHECK(empty.reuse_line() == "fleet reuse rate unknown: no hit-arm query was placed");
}

TEST_CASE("per-replica tallies carry each replica's evidence", "[placement]") {
    auto warm = attribute(fleet({{0, 0}, {0, 0}}), fleet({{0, 0}, {726, 0}}));
    auto query = attribute(fleet({{0, 0}, {726, 0}}), fleet({{0, 0}, {1483, 640}}));
    const auto s = summarize_placement({trial(warm, query)}, 3);
    CHECK(s.per_replica[0].requests == 0);
    CHECK(s.per_replica[1].requests == 2);
    CHECK(s.per_replica[1].queried_tokens == 1483);
    CHECK(s.per_replica[1].hit_tokens == 640);
    CHECK(s.per_replica[2].requests == 0);
    CHECK(s.reuse_line() ==
          "fleet reuse 100% (1 of 1 placed queries) vs 33% by chance with 3 replicas; P(>= 1 by chance) = 0.333");
}

TEST_CASE("the chance of a reuse rate under prefix-blind placement is a binomial tail", "[placement]") {
    CHECK(binomial_upper_tail(0, 10, 0.5) == 1.0);
    CHECK(binomial_upper_tail(11, 10, 0.5) == 0.0);
    CHECK(binomial_upper_tail(1, 1, 0.25) == Approx(0.25));
    CHECK(binomial_upper_tail(2, 3, 0.5) == Approx(0.5));         // (3 + 1) / 8
    CHECK(binomial_upper_tail(7, 10, 0.5) == Approx(176.0 / 1024));  // (120 + 45 + 10 + 1) / 1024
    CHECK(binomial_upper_tail(5, 5, 1.0) == 1.0);                    // one replica: reuse is certain
    const auto one = summarize_placement({trial(on(0), on(0))}, 1);
    CHECK(one.chance_rate() == 1.0);
    CHECK(one.p_by_chance() == 1.0);
}
