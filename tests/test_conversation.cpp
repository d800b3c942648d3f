#include <catch2/catch.hpp>

#include <set>
#include <sstream>

#include "kvgate/experiment/conversation.hpp"
#include "kvgate/model/settings.hpp"

using namespace kvgate;

namespace {
// A stand-in chat template and tokenizer. The template puts a role header before each message (the
// system one after BOS), like real models' templates; `header = false` concatenates the contents
// after BOS, like the default local model's. Words are 1 token, or 2 when longer than 5 letters;
// a final '.' or '?' is one more.
struct FakeEngine {
    bool header = true;
    int calls = 0;

    std::vector<int> render(const std::vector<Message>& messages) const {
        std::vector<int> ids = {2};  // BOS
        for (const auto& m : messages) {
            if (header) {
                const int role = static_cast<int>(m.role);
                ids.insert(ids.end(), {100, 101 + role, 105});  // <|start|> role <|sep|>
            }
            std::istringstream in(m.content);
            for (std::string w; in >> w;) {
                const char last = w.back();
                if (last == '.' || last == '?') w.pop_back();
                const int id = 1000 + static_cast<int>(std::hash<std::string>{}(w) % 50000);
                ids.push_back(id);
                if (w.size() > 5) ids.push_back(id + 1);
                if (last == '.' || last == '?') ids.push_back(last);
            }
        }
        return ids;
    }
    MessageCounter counter() {
        return [this](const std::vector<Message>& m) {
            ++calls;
            return std::optional<int>(static_cast<int>(render(m).size()));
        };
    }
};
constexpr int kHeader = 3;  // tokens the fake template puts before every message's words

// Every word exactly 2 tokens and no punctuation tokens: sizes land exactly on even targets, so the
// edit arithmetic below can be written out by hand.
std::optional<int> exact_two_per_word(const std::vector<Message>& messages) {
    int n = 2;  // BOS, system header
    for (const auto& m : messages) {
        n += 2;  // role header
        std::istringstream in(m.content);
        for (std::string w; in >> w;) n += 2;
    }
    return n;
}

bool roles_alternate(const std::vector<Message>& m) {
    if (m.empty() || m[0].role != Role::system) return false;
    for (std::size_t i = 1; i < m.size(); ++i)
        if (m[i].role != (i % 2 == 1 ? Role::user : Role::assistant)) return false;
    return true;
}
}  // namespace

TEST_CASE("messages are sized in the engine's tokens, template overhead included", "[conversation]") {
    FakeEngine engine;
    ConversationBuilder builder(42, engine.counter());
    ConversationShape shape;  // 64 / 24 / 40, query 32
    const auto c = builder.build(0, shape, 11);
    REQUIRE(c.messages.size() == 23);
    CHECK(c.exchanges() == 11);
    CHECK(roles_alternate(c.messages));
    // Every message boundary at its nominal offset (the targets' running sum) or 1 token after:
    // never short, at most 1% over (1 token minimum), with no drift along the conversation.
    int nominal = 0, at = 0;
    for (std::size_t i = 0; i < c.messages.size(); ++i) {
        const int target = i == 0 ? 64 : i % 2 == 1 ? 24 : 40;
        nominal += target;
        at += c.tokens[i];
        INFO("message " << i);
        CHECK(at >= nominal);
        CHECK(at <= nominal + 1);
        CHECK(std::abs(c.tokens[i] - target) <= 1);
    }
    CHECK(c.query_tokens >= 32);
    CHECK(c.query_tokens <= 33);
    CHECK(c.query.role == Role::user);
    CHECK(c.query.content.back() == '?');
    // The per-message sizes add up to the rendered prompt: the overhead is counted once, in place.
    CHECK(static_cast<int>(engine.render(c.messages).size()) == c.warm_tokens());
    auto with_query = c.messages;
    with_query.push_back(c.query);
    CHECK(static_cast<int>(engine.render(with_query).size()) == c.warm_tokens() + c.query_tokens);
    CHECK_FALSE(builder.sizes_estimated());
    // The running estimates make later messages cheap to size: ~2 counts a message, not 10.
    CHECK(engine.calls < 3 * 24);
}

TEST_CASE("a concatenating template is sized the same way", "[conversation]") {
    FakeEngine engine{false};
    ConversationBuilder builder(3, engine.counter());
    const auto c = builder.build(5, ConversationShape{16, 20, 30, 8}, 4);
    int nominal = 0, at = 0;
    for (std::size_t i = 0; i < c.messages.size(); ++i) {
        nominal += i == 0 ? 16 : i % 2 == 1 ? 20 : 30;
        at += c.tokens[i];
        CHECK(at >= nominal);
        CHECK(at <= nominal + 1);
    }
    CHECK(static_cast<int>(engine.render(c.messages).size()) == c.warm_tokens());
    for (const auto& m : c.messages) CHECK(m.content.front() == ' ');  // message joins are word boundaries
}

TEST_CASE("every draw is fresh content, and a seed reproduces it", "[conversation]") {
    FakeEngine engine;
    ConversationBuilder a(1, engine.counter()), b(1, engine.counter()), other_seed(2, engine.counter());
    const ConversationShape shape;
    const auto d0 = a.build(0, shape, 5), d1 = a.build(1, shape, 5);
    for (std::size_t i = 0; i < d0.messages.size(); ++i) {
        CHECK(d0.messages[i].content != d1.messages[i].content);
        // From the first word on: a different first block means no cached prefix shared across draws.
        CHECK(d0.messages[i].content.substr(0, 12) != d1.messages[i].content.substr(0, 12));
    }
    CHECK(d0.query.content != d1.query.content);
    const auto again = b.build(0, shape, 5);
    CHECK(again.messages == d0.messages);
    CHECK(again.query == d0.query);
    CHECK(other_seed.build(0, shape, 5).messages[0] != d0.messages[0]);
    // Within one conversation no two messages repeat each other.
    std::set<std::string> contents;
    for (const auto& m : d0.messages) contents.insert(m.content);
    CHECK(contents.size() == d0.messages.size());
}

TEST_CASE("without a counter the sizes are estimates, and say so", "[conversation]") {
    ConversationBuilder builder(5, [](const std::vector<Message>&) { return std::optional<int>{}; });
    const auto c = builder.build(0, ConversationShape{}, 3);
    CHECK(builder.sizes_estimated());
    CHECK(c.messages.size() == 7);
    CHECK(c.tokens[0] == Approx(64).margin(2));
    CHECK(c.tokens[1] == Approx(24).margin(2));
}

TEST_CASE("misuse names what was wrong", "[conversation]") {
    ConversationBuilder builder(5, exact_two_per_word);
    CHECK_THROWS_WITH(builder.build(0, ConversationShape{64, 0, 40, 32}, 3), Catch::Contains("user_tokens is 0"));
    CHECK_THROWS_WITH(builder.build(0, ConversationShape{}, 0), Catch::Contains("at least 1"));
    const auto c = builder.build(0, ConversationShape{}, 3);
    CHECK_THROWS_WITH(builder.measured(c, {EditKind::remove, 3}), Catch::Contains("exchanges 0..2"));
    CHECK_THROWS_AS(builder.measured(c, {EditKind::truncate, -1}), std::invalid_argument);
}

TEST_CASE("edits: remove, replace, truncate at the first, middle and last exchange", "[conversation]") {
    ConversationBuilder builder(9, exact_two_per_word);
    const auto warm = builder.build(0, ConversationShape{}, 5);  // 64 + 5 x (24 + 40) = 384, query 32
    REQUIRE(warm.warm_tokens() == 384);
    REQUIRE(warm.query_tokens == 32);

    struct Case {
        Edit edit;
        std::size_t messages, first_changed;
        int shared, measured;
        int reuse128, reuse16, reuse1;
    };
    // measured = sizes kept + 32 (query); shared = tokens before the first changed message.
    const std::vector<Case> cases = {
        {{EditKind::none, 0}, 12, 11, 384, 416, 384, 384, 384},  // the full hit: 3 whole blocks of 128
        {{EditKind::remove, 0}, 10, 1, 64, 352, 0, 64, 64},
        {{EditKind::remove, 2}, 10, 5, 192, 352, 128, 192, 192},
        {{EditKind::remove, 4}, 10, 9, 320, 352, 256, 320, 320},
        {{EditKind::replace, 0}, 12, 1, 64, 416, 0, 64, 64},
        {{EditKind::replace, 2}, 12, 5, 192, 416, 128, 192, 192},
        {{EditKind::replace, 4}, 12, 9, 320, 416, 256, 320, 320},
        {{EditKind::truncate, 0}, 10, 1, 64, 352, 0, 64, 64},  // = remove 0: the same edit
        {{EditKind::truncate, 2}, 6, 1, 64, 224, 0, 64, 64},
        {{EditKind::truncate, 4}, 2, 1, 64, 96, 0, 64, 64},  // only the system message is left
    };
    for (const auto& k : cases) {
        INFO(edit_kind_name(k.edit.kind) << " " << k.edit.exchange);
        const auto m = builder.measured(warm, k.edit);
        CHECK(m.messages.size() == k.messages);
        CHECK(roles_alternate(m.messages));
        CHECK(m.messages.back() == warm.query);
        CHECK(m.first_changed == k.first_changed);
        CHECK(m.shared_tokens == k.shared);
        CHECK(m.total_tokens() == k.measured);
        CHECK(*exact_two_per_word(m.messages) == k.measured);
        for (std::size_t i = 0; i < std::min(m.first_changed, warm.messages.size()); ++i)
            CHECK(m.messages[i] == warm.messages[i]);
        if (m.first_changed < warm.messages.size()) CHECK(m.messages[m.first_changed] != warm.messages[m.first_changed]);
        for (auto [block, reuse] : {std::pair{128, k.reuse128}, std::pair{16, k.reuse16}, std::pair{1, k.reuse1}}) {
            const auto p = predict_reuse(m, block);
            CHECK(p.reuse_tokens == reuse);
            CHECK(p.recompute_tokens == k.measured - reuse);
        }
    }
    SECTION("replace keeps the roles and sizes, with fresh words") {
        const auto m = builder.measured(warm, {EditKind::replace, 2});
        for (std::size_t i : {5, 6}) {
            CHECK(m.messages[i].role == warm.messages[i].role);
            CHECK(m.tokens[i] == warm.tokens[i]);
            CHECK(m.messages[i].content.substr(0, 12) != warm.messages[i].content.substr(0, 12));
        }
        CHECK(m.messages[7] == warm.messages[7]);
    }
    SECTION("a generation prompt adds to the measured size, not to the shared prefix") {
        const auto p = predict_reuse(builder.measured(warm, {EditKind::none, 0}), 128, 5);
        CHECK(p.measured_tokens == 421);
        CHECK(p.reuse_tokens == 384);
        CHECK(p.recompute_tokens == 37);
    }
}

TEST_CASE("token ids part within the first changed message, after its shared role header", "[conversation]") {
    for (bool header : {true, false}) {
        FakeEngine engine{header};
        ConversationBuilder builder(77, engine.counter());
        const auto warm = builder.build(3, ConversationShape{}, 5);
        const auto warm_ids = engine.render(warm.messages);
        for (EditKind kind : {EditKind::remove, EditKind::replace, EditKind::truncate})
            for (int k : {0, 2, 4}) {
                INFO((header ? "header " : "concatenating ") << edit_kind_name(kind) << " " << k);
                const auto m = builder.measured(warm, {kind, k});
                const auto ids = predict_reuse(warm_ids, engine.render(m.messages), 1);
                const auto counts = predict_reuse(m, 1);
                CHECK(ids.measured_tokens == counts.measured_tokens);
                // The counts' parting point is the first changed message's start; the ids part
                // after the role header both share (the same role follows), within that message.
                CHECK(ids.shared_tokens >= counts.shared_tokens + (header ? kHeader : 0));
                CHECK(ids.shared_tokens < counts.shared_tokens + m.tokens[m.first_changed]);
            }
        const auto hit = builder.measured(warm, {EditKind::none, 0});
        CHECK(predict_reuse(warm_ids, engine.render(hit.messages), 1).shared_tokens ==
              static_cast<int>(warm_ids.size()));  // the warm prompt is a token prefix of the hit
    }
}

TEST_CASE("reuse is whole blocks before the first changed token, never the last token", "[conversation]") {
    struct Case {
        int shared, measured, block, reuse;
    };
    for (const auto& c : std::vector<Case>{
             {300, 500, 128, 256}, {256, 500, 128, 256}, {255, 500, 128, 128},  // block boundaries
             {127, 500, 128, 0},    {0, 500, 128, 0},                            // less than a block
             {512, 512, 128, 384},  {513, 513, 128, 512},                        // a full repeat computes its last token
             {300, 500, 1, 300},    {500, 500, 1, 499},                          // block 1: to the token
             {300, 500, 16, 288}}) {
        INFO(c.shared << " shared of " << c.measured << ", block " << c.block);
        const auto p = predict_reuse(c.shared, c.measured, c.block);
        CHECK(p.reuse_tokens == c.reuse);
        CHECK(p.recompute_tokens == c.measured - c.reuse);
        CHECK(p.block_known);
    }
    const auto unknown = predict_reuse(300, 500, 0);  // block size not reported by the engine
    CHECK_FALSE(unknown.block_known);
    CHECK(unknown.reuse_tokens == 300);  // the token-exact upper bound
    CHECK_THROWS_WITH(predict_reuse(501, 500, 16), Catch::Contains("shared <= measured"));
    CHECK_THROWS_AS(predict_reuse(0, 0, 16), std::invalid_argument);

    const std::vector<int> warm = {2, 5, 6, 7, 8, 9};
    CHECK(predict_reuse(warm, {2, 5, 6, 7, 8, 9, 10, 11}, 2).reuse_tokens == 6);
    CHECK(predict_reuse(warm, {2, 5, 6, 1, 8, 9, 10, 11}, 2).reuse_tokens == 2);
    CHECK(predict_reuse(warm, warm, 2).reuse_tokens == 4);  // repeat: the last token is recomputed
    CHECK(predict_reuse({}, {2, 5}, 1).reuse_tokens == 0);
}

TEST_CASE("the sweep: positions from the first exchange to the last, at each context", "[conversation]") {
    const SweepSpec spec;
    const auto points = spec.points();
    REQUIRE(points.size() == 2 + 3 * 5 * 2);
    std::set<std::tuple<int, int, int>> seen;
    for (const auto& p : points) {
        CHECK(p.exchanges == spec.shape.exchanges_for(p.context_tokens));
        seen.insert({p.context_tokens, static_cast<int>(p.edit.kind), p.edit.exchange});
    }
    CHECK(seen.size() == points.size());
    CHECK(spec.shape.exchanges_for(384) == 5);
    CHECK(spec.shape.exchanges_for(768) == 11);
    for (EditKind kind : spec.kinds)
        for (int ctx : spec.context_tokens) {
            std::vector<int> at;
            for (const auto& p : points)
                if (p.edit.kind == kind && p.context_tokens == ctx) at.push_back(p.edit.exchange);
            REQUIRE(at.size() == 5);
            CHECK(at.front() == 0);
            CHECK(at.back() == spec.shape.exchanges_for(ctx) - 1);
            CHECK(std::is_sorted(at.begin(), at.end()));
        }
    CHECK(points[0].edit.kind == EditKind::none);
    CHECK(points[1].edit.kind == EditKind::none);
    CHECK(points[0].context_tokens != points[1].context_tokens);  // contexts interleave

    SweepSpec crowded;
    crowded.positions = {0, 0.1, 0.2, 0.3, 0.5, 1};  // 0.1 and 0.0 both land on exchange 0 of 5
    CHECK_THROWS_WITH(crowded.points(), Catch::Contains("fewer positions"));
    SweepSpec with_none;
    with_none.kinds = {EditKind::none};
    CHECK_THROWS_WITH(with_none.points(), Catch::Contains("always included"));
    SweepSpec outside;
    outside.positions = {0, 1.5};
    CHECK_THROWS_WITH(outside.points(), Catch::Contains("outside [0, 1]"));
}

TEST_CASE("the schedule: every point once per trial, in a drift-balanced order, fresh draws", "[conversation]") {
    for (int trials : {2, 4, 6}) {
        SweepSpec spec;
        spec.trials = trials;
        const std::size_t n = spec.points().size();
        const auto cells = schedule(spec);
        REQUIRE(cells.size() == n * static_cast<std::size_t>(trials));
        std::set<std::uint64_t> draws;
        std::vector<double> slot_sum(n, 0);
        for (int t = 0; t < trials; ++t) {
            std::set<std::size_t> in_trial;
            for (std::size_t s = 0; s < n; ++s) {
                const auto& c = cells[static_cast<std::size_t>(t) * n + s];
                CHECK(c.trial == t);
                CHECK(c.slot == static_cast<int>(s));
                in_trial.insert(c.point);
                slot_sum[c.point] += c.slot;
                draws.insert(c.draw);
            }
            CHECK(in_trial.size() == n);
        }
        CHECK(draws.size() == cells.size());
        // Linear drift over the run weighs on every point alike: equal mean slot.
        for (double sum : slot_sum) CHECK(sum / trials == Approx((n - 1) / 2.0));
        // Successive pairs start elsewhere.
        if (trials >= 4) CHECK(cells[0].point != cells[2 * n].point);
    }
}

TEST_CASE("the default sweep fits in 3 minutes on the seed's CPU vLLM", "[conversation]") {
    // The cost line the curve's own fit gave on this machine, quiet (the fresh-clone CI check of
    // 2026-11-29, contexts 384 and 768, settle 500 ms: 219 s measured): t0 56.6 ms, 2.77 ms a token.
    const SweepCostModel measured{56.6, 2.77, 500, 0, 128};
    SweepSpec measured_sweep;
    measured_sweep.context_tokens = {384, 768};
    INFO("the model for the measured sweep: " << estimated_sweep_seconds(measured_sweep, measured) << " s");
    CHECK(estimated_sweep_seconds(measured_sweep, measured) == Approx(219).epsilon(0.15));

    SweepCostModel now = measured;
    now.settle_ms = CurveSpec{}.settle_ms;
    const double seconds = estimated_sweep_seconds(SweepSpec{}, now);
    INFO("the defaults: " << seconds << " s");
    CHECK(seconds <= 165);  // room under 180 s for a busier machine
    CHECK(seconds >= 100);  // and not far under: the budget buys trials

    // The arithmetic on one cell: remove exchange 0 of 5 (384 tokens): warm 384, settle, measured
    // 384 - 64 + 32 = 352 with nothing reused (the edit is inside the first 128-token block).
    SweepSpec one;
    one.context_tokens = {384};
    one.positions = {0};
    one.kinds = {EditKind::remove};
    one.trials = 1;
    // Points: the hit (recompute 416 - 384 = 32) and the removal.
    const double t0 = measured.fixed_ms, a = measured.ms_per_token;
    const double hit_ms = t0 + a * 384 + 500 + t0 + a * 32;
    const double remove_ms = t0 + a * 384 + 500 + t0 + a * 352;
    CHECK(estimated_sweep_seconds(one, measured) == Approx((hit_ms + remove_ms) / 1000));
}
