// Placement in a fleet: which replica served each request, read from the replicas' own prefix-cache
// counters (the router is real and kvgate never routes), and the arithmetic of the fleet verdict.
// Pure: counters in (as parse_metrics() sums them over label sets), placements and counts out.
//
// Requests are sequential, so between a snapshot before a request and one after it only the
// replica that served it looks up prompt tokens: its vllm:prefix_cache_queries_total moves. When
// no counter or more than one moved, the request is not placed: that is an outcome of its own,
// never a guess.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvgate {

// One replica's prefix-cache counters at one moment, summed over label sets.
struct ReplicaCounters {
    bool available = false;  // false: its /metrics could not be read or lacks the counters
    double queries = 0;      // vllm:prefix_cache_queries_total (prompt tokens looked up)
    double hits = 0;         // vllm:prefix_cache_hits_total (prompt tokens found cached)
};

enum class PlacementOutcome {
    served,         // exactly one replica's queries counter moved: that replica served the request
    none_moved,     // no counter moved (the request never reached a replica's scheduler, or counters lag)
    several_moved,  // more than one moved (other traffic, or requests overlapped)
    unreadable,     // a replica's counters were missing before or after: its share is unknown
    counter_reset,  // a counter went backwards: a replica restarted between the snapshots
};

inline const char* to_string(PlacementOutcome o) {
    switch (o) {
        case PlacementOutcome::served: return "served";
        case PlacementOutcome::none_moved: return "none_moved";
        case PlacementOutcome::several_moved: return "several_moved";
        case PlacementOutcome::unreadable: return "unreadable";
        case PlacementOutcome::counter_reset: return "counter_reset";
    }
    return "?";
}

struct Placement {
    PlacementOutcome outcome = PlacementOutcome::none_moved;
    int replica = -1;           // served: the replica's index in the snapshot lists; else -1
    std::vector<int> replicas;  // served: {replica}; several_moved: those that moved;
                                // unreadable / counter_reset: those affected; none_moved: {}
    double queried_tokens = 0;  // served: the replica's queries delta
    double hit_tokens = 0;      // served: the replica's hits delta

    bool placed() const { return outcome == PlacementOutcome::served; }
};

namespace detail {
inline std::string join_replicas(const std::vector<int>& r) {
    std::string out;
    for (std::size_t i = 0; i < r.size(); ++i)
        out += (i == 0 ? "" : i + 1 == r.size() ? " and " : ", ") + std::to_string(r[i]);
    return out;
}
}  // namespace detail

// One line for a report: "replica 1", or why the request has no replica.
inline std::string describe(const Placement& p) {
    const std::string which = detail::join_replicas(p.replicas);
    switch (p.outcome) {
        case PlacementOutcome::served: return "replica " + std::to_string(p.replica);
        case PlacementOutcome::none_moved: return "not placed: no replica's prefix_cache_queries_total moved";
        case PlacementOutcome::several_moved:
            return "not placed: replicas " + which + " all moved (other traffic or overlapping requests)";
        case PlacementOutcome::unreadable: return "not placed: counters of replica(s) " + which + " unreadable";
        case PlacementOutcome::counter_reset:
            return "not placed: counters of replica(s) " + which + " went backwards (restarted)";
    }
    return "?";
}

// Which replica served the request between two snapshots of every replica (same order in both).
inline Placement attribute(const std::vector<ReplicaCounters>& before, const std::vector<ReplicaCounters>& after) {
    if (before.empty() || before.size() != after.size())
        throw std::invalid_argument("placement: " + std::to_string(before.size()) + " replica snapshot(s) before the request and " +
                                    std::to_string(after.size()) +
                                    " after; snapshot the same non-empty replica list on both sides");
    Placement p;
    std::vector<int> unreadable, reset, moved;
    for (std::size_t i = 0; i < before.size(); ++i) {
        const int r = static_cast<int>(i);
        if (!before[i].available || !after[i].available) unreadable.push_back(r);
        else if (after[i].queries < before[i].queries || after[i].hits < before[i].hits) reset.push_back(r);
        else if (after[i].queries > before[i].queries) moved.push_back(r);
    }
    if (!unreadable.empty()) {
        p.outcome = PlacementOutcome::unreadable;
        p.replicas = unreadable;
    } else if (!reset.empty()) {
        p.outcome = PlacementOutcome::counter_reset;
        p.replicas = reset;
    } else if (moved.size() > 1) {
        p.outcome = PlacementOutcome::several_moved;
        p.replicas = moved;
    } else if (moved.size() == 1) {
        const auto i = static_cast<std::size_t>(moved[0]);
        p.outcome = PlacementOutcome::served;
        p.replica = moved[0];
        p.replicas = moved;
        p.queried_tokens = after[i].queries - before[i].queries;
        p.hit_tokens = after[i].hits - before[i].hits;
    }
    return p;
}

// Where one trial's warm-up [A,B] and measured query went.
struct TrialPlacement {
    bool hit_arm = true;  // hit arm: the query must land on its warm-up's replica
    Placement warm;
    Placement measured;

    bool same_replica() const { return warm.placed() && measured.placed() && warm.replica == measured.replica; }
    bool moved() const { return warm.placed() && measured.placed() && warm.replica != measured.replica; }
};

// Each replica's share of the run: requests served and its cache evidence.
struct ReplicaTally {
    int requests = 0;
    double queried_tokens = 0;
    double hit_tokens = 0;
};

// P(X >= k) for X ~ Binomial(n, p): how likely k or more of n queries land on their warm-up's
// replica when placement ignores the prefix (p = 1/N).
inline double binomial_upper_tail(int k, int n, double p) {
    if (k <= 0) return 1.0;
    if (k > n) return 0.0;
    if (p >= 1.0) return 1.0;
    if (p <= 0.0) return 0.0;
    double tail = 0;
    for (int i = k; i <= n; ++i)
        tail += std::exp(std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) + i * std::log(p) +
                         (n - i) * std::log1p(-p));
    return std::min(tail, 1.0);
}

enum class FleetPlacementCheck {
    local,     // every hit-arm query was served where its warm-up was
    moved,     // at least one went elsewhere: the routing broke cache locality (a fail, before timing)
    unplaced,  // none moved, but some (or all) could not be placed: locality unverified
};

inline const char* to_string(FleetPlacementCheck c) {
    switch (c) {
        case FleetPlacementCheck::local: return "local";
        case FleetPlacementCheck::moved: return "moved";
        case FleetPlacementCheck::unplaced: return "unplaced";
    }
    return "?";
}

struct FleetPlacementSummary {
    int replicas = 0;
    int hit_trials = 0;  // hit-arm trials considered
    int same = 0;        // query on its warm-up's replica
    int moved = 0;       // query on another replica than its warm-up
    int unplaced = 0;    // warm-up or query not placed
    std::vector<ReplicaTally> per_replica;  // over every request of both arms

    int placed() const { return same + moved; }
    // Share of placed hit-arm queries that found their warm-up's replica; NaN when none was placed.
    double reuse_rate() const {
        return placed() > 0 ? static_cast<double>(same) / placed() : std::numeric_limits<double>::quiet_NaN();
    }
    // What a placement that ignores the prefix gives: 1/N.
    double chance_rate() const { return 1.0 / replicas; }
    double p_by_chance() const { return binomial_upper_tail(same, placed(), chance_rate()); }

    FleetPlacementCheck check() const {
        if (moved > 0) return FleetPlacementCheck::moved;
        if (unplaced > 0 || hit_trials == 0) return FleetPlacementCheck::unplaced;
        return FleetPlacementCheck::local;
    }

    // The verdict's reason: "3 of 10 queries went to another replica than their warm-up".
    std::string message() const {
        const std::string of = " of " + std::to_string(hit_trials) + " ";
        std::string unplaced_part = std::to_string(unplaced) + of +
                                    "queries could not be placed (warm-up or query not attributed to one replica)";
        switch (check()) {
            case FleetPlacementCheck::moved:
                return std::to_string(moved) + of + "queries went to another replica than their warm-up" +
                       (unplaced > 0 ? "; " + unplaced_part : "");
            case FleetPlacementCheck::unplaced:
                return hit_trials == 0 ? "no hit-arm trial to place" : unplaced_part + "; cache locality unverified";
            case FleetPlacementCheck::local:
                return std::to_string(same) + of + "queries went to the replica of their warm-up";
        }
        return "?";
    }

    // "fleet reuse 70% (7 of 10 placed queries) vs 50% by chance with 2 replicas; P(>= 7 by chance) = 0.17"
    std::string reuse_line() const {
        if (placed() == 0) return "fleet reuse rate unknown: no hit-arm query was placed";
        const auto pct = [](double x) { return std::to_string(static_cast<int>(std::lround(100 * x))) + "%"; };
        char p[32];
        std::snprintf(p, sizeof p, "%.3g", p_by_chance());
        return "fleet reuse " + pct(reuse_rate()) + " (" + std::to_string(same) + " of " + std::to_string(placed()) +
               " placed queries) vs " + pct(chance_rate()) + " by chance with " + std::to_string(replicas) +
               " replica" + (replicas == 1 ? "" : "s") + "; P(>= " + std::to_string(same) + " by chance) = " + p;
    }
};

// Counts over a run's trials: the hit arm's locality for the verdict, every request for the tallies.
inline FleetPlacementSummary summarize_placement(const std::vector<TrialPlacement>& trials, int replicas) {
    if (replicas < 1)
        throw std::invalid_argument("placement: a fleet of " + std::to_string(replicas) +
                                    " replicas; name at least one replica (KVGATE_FLEET_REPLICA_URLS)");
    FleetPlacementSummary s;
    s.replicas = replicas;
    s.per_replica.resize(static_cast<std::size_t>(replicas));
    const auto tally = [&](const Placement& p) {
        if (!p.placed()) return;
        if (p.replica >= replicas)
            throw std::invalid_argument("placement: replica " + std::to_string(p.replica) + " in a fleet of " +
                                        std::to_string(replicas) + "; summarize over the list the placements index");
        auto& t = s.per_replica[static_cast<std::size_t>(p.replica)];
        ++t.requests;
        t.queried_tokens += p.queried_tokens;
        t.hit_tokens += p.hit_tokens;
    };
    for (const auto& t : trials) {
        tally(t.warm);
        tally(t.measured);
        if (!t.hit_arm) continue;
        ++s.hit_trials;
        if (t.same_replica()) ++s.same;
        else if (t.moved()) ++s.moved;
        else ++s.unplaced;
    }
    return s;
}

}  // namespace kvgate
