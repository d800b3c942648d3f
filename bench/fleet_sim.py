#!/usr/bin/env python3
"""How placement, prefix reuse and the expected saving scale with a fleet's size.

A small discrete-event simulation (standard library only) of N replicas behind a router, each with
C concurrent multi-turn conversations. Every turn resends the conversation so far plus a new turn;
a replica reuses the part of it that is still in its prefix cache (LRU over conversations, a fixed
token capacity per replica). The router places each request by one of:

  random           a replica drawn at random
  round_robin      the next replica in turn (arrivals interleave, so a conversation wanders)
  consistent_hash  a hash of the conversation (its first block): sticky, blind to load
  cache_aware      vllm-router's cache_aware as documented: the replica whose routed-text tree
                   matches the longest prefix when the match ratio clears --cache-threshold and
                   the fleet is balanced; else the replica with the least routed text, or the
                   least loaded one when loads differ by more than the balance thresholds

The saving is what kvgate measures: reused tokens times the per-token hit-vs-miss prefill cost
(--saving-ms-per-token; 1.5 is a placeholder, put in the figure kvgate measured on your engine).
"""
import argparse
import heapq
import random
import zlib
from collections import OrderedDict

POLICIES = ("random", "round_robin", "consistent_hash", "cache_aware")


class Replica:
    def __init__(self, capacity):
        self.capacity = capacity
        self.cache = OrderedDict()  # conversation -> cached prefix tokens, LRU first
        self.routed = {}            # router's view: conversation -> longest prefix routed here
        self.busy_until = 0.0
        self.in_flight = []         # completion times of requests queued or running here
        self.requests = 0

    def load(self, now):
        self.in_flight = [t for t in self.in_flight if t > now]
        return len(self.in_flight)

    def cached(self, conv):
        return self.cache.get(conv, 0)

    def store(self, conv, tokens):
        self.cache.pop(conv, None)
        self.cache[conv] = tokens
        while sum(self.cache.values()) > self.capacity and len(self.cache) > 1:
            self.cache.popitem(last=False)
        if sum(self.cache.values()) > self.capacity:  # one conversation larger than the cache
            self.cache.popitem(last=False)


def route(policy, replicas, conv, context, now, state, a):
    n = len(replicas)
    if policy == "random":
        return state["rng"].randrange(n)
    if policy == "round_robin":
        state["next"] = (state.get("next", -1) + 1) % n
        return state["next"]
    if policy == "consistent_hash":
        return zlib.crc32(b"conversation-%d" % conv) % n
    # cache_aware: the router's own approximate tree, not the replicas' caches.
    loads = [r.load(now) for r in replicas]
    if max(loads) - min(loads) > a.balance_abs and max(loads) > min(loads) * a.balance_rel:
        return loads.index(min(loads))
    match = [min(r.routed.get(conv, 0), context) / context for r in replicas]
    best = max(range(n), key=lambda i: (match[i], -loads[i]))
    if match[best] > a.cache_threshold:
        return best
    sizes = [sum(r.routed.values()) for r in replicas]
    return sizes.index(min(sizes))


def simulate(policy, n, per_replica, a, run):
    rng = random.Random(((a.seed * 1000003 + run) * 101 + n) * 101 + per_replica)
    state = {"rng": rng}
    replicas = [Replica(a.cache_tokens) for _ in range(n)]
    convs = n * per_replica
    events = [(rng.expovariate(1 / a.think_s), c, 0) for c in range(convs)]  # (time, conv, turn)
    heapq.heapify(events)
    reusable = reused = hits = local = later_turns = 0
    last = {}  # conversation -> replica of its previous turn
    latency = 0.0
    served = 0
    while events:
        now, conv, turn = heapq.heappop(events)
        context = a.prefix_tokens + turn * a.turn_tokens   # what this request sends
        before = context - a.turn_tokens if turn > 0 else 0  # what earlier turns already sent
        i = route(policy, replicas, conv, context, now, state, a)
        r = replicas[i]
        got = min(r.cached(conv), before)
        if turn > 0:
            later_turns += 1
            reusable += before
            reused += got
            hits += got > 0
            local += last[conv] == i
        last[conv] = i
        service = ((context - got) * a.saving_ms_per_token + a.fixed_ms) / 1000
        start = max(now, r.busy_until)
        r.busy_until = start + service
        r.in_flight.append(r.busy_until)
        r.requests += 1
        r.store(conv, context)
        r.routed[conv] = max(r.routed.get(conv, 0), context)
        latency += r.busy_until - now
        served += 1
        if turn + 1 < a.turns:
            heapq.heappush(events, (r.busy_until + rng.expovariate(1 / a.think_s), conv, turn + 1))
    mean_req = served / n
    return {
        "local": local / later_turns if later_turns else float("nan"),
        "hit_rate": hits / later_turns if later_turns else float("nan"),
        "token_reuse": reused / reusable if reusable else float("nan"),
        "saving_ms": reused * a.saving_ms_per_token / later_turns if later_turns else float("nan"),
        "imbalance": max(r.requests for r in replicas) / mean_req,
        "latency_s": latency / served,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replicas", default="1,2,4,8", help="fleet sizes N (comma-separated)")
    p.add_argument("--conversations", default="1,4,16", help="concurrent conversations per replica C")
    p.add_argument("--policies", default=",".join(POLICIES))
    p.add_argument("--saving-ms-per-token", type=float, default=1.5,
                   help="prefill cost of a token recomputed instead of reused (placeholder: kvgate's measured figure)")
    p.add_argument("--fixed-ms", type=float, default=50, help="per-request cost besides prefill (decode, HTTP)")
    p.add_argument("--prefix-tokens", type=int, default=768, help="first turn's prompt ([A,B])")
    p.add_argument("--turn-tokens", type=int, default=256, help="tokens each later turn adds")
    p.add_argument("--turns", type=int, default=8, help="requests per conversation")
    p.add_argument("--think-s", type=float, default=30, help="mean pause between a reply and the next turn")
    p.add_argument("--cache-tokens", type=int, default=29000,
                   help="prefix-cache capacity per replica (29k: engine.sh's 1 GiB on CPU, opt-125m)")
    p.add_argument("--cache-threshold", type=float, default=0.3, help="cache_aware: least match ratio to follow")
    p.add_argument("--balance-abs", type=int, default=64, help="cache_aware: load gap that overrides the match")
    p.add_argument("--balance-rel", type=float, default=1.5, help="cache_aware: load ratio that overrides the match")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=10, help="independent runs averaged per row")
    a = p.parse_args()
    ns = [int(x) for x in a.replicas.split(",")]
    cs = [int(x) for x in a.conversations.split(",")]
    policies = a.policies.split(",")
    for pol in policies:
        if pol not in POLICIES:
            p.error(f"unknown policy {pol!r}; choose from {', '.join(POLICIES)}")

    ideal = a.saving_ms_per_token * (a.prefix_tokens + (a.turns - 2) * a.turn_tokens / 2)
    print(f"{a.turns} turns per conversation ({a.prefix_tokens} tokens, +{a.turn_tokens} a turn), "
          f"{a.cache_tokens} cached tokens per replica, {a.saving_ms_per_token} ms saved per reused token, "
          f"think time {a.think_s} s, "
          f"mean of {a.runs} runs, seed {a.seed}")
    print("local: later turns placed on their previous turn's replica (what kvgate's fleet check counts; "
          "prefix-blind placement: 1/N); hit: later turns that reused any cached prefix, also an older turn's "
          "copy on another replica; reuse: reused / reusable tokens; "
          f"saving: mean ms saved per later turn (every earlier token reused: {ideal:.0f} ms); "
          "imbalance: busiest replica's requests / mean\n")
    print("| policy | N | conv/replica | local | chance 1/N | hit | token reuse | saving ms | imbalance | mean latency s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for pol in policies:
        for n in ns:
            for c in cs:
                runs = [simulate(pol, n, c, a, k) for k in range(a.runs)]
                r = {key: sum(x[key] for x in runs) / a.runs for key in runs[0]}
                print(f"| {pol} | {n} | {c} | {r['local']:.0%} | {1 / n:.0%} | {r['hit_rate']:.0%} | {r['token_reuse']:.0%} | "
                      f"{r['saving_ms']:.0f} | {r['imbalance']:.2f} | "
                      f"{r['latency_s']:.2f} |")


if __name__ == "__main__":
    main()
