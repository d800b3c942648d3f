#include <catch2/catch.hpp>

#include <sstream>

#include "kvgate/experiment/prompt.hpp"

using namespace kvgate;

namespace {
// A stand-in tokenizer: each word is two tokens, each '.' or '?' one more.
std::optional<int> two_per_word(const std::string& text) {
    std::istringstream in(text);
    int n = 0;
    for (std::string w; in >> w;) n += 2 + (w.back() == '.' || w.back() == '?');
    return n;
}
}  // namespace

TEST_CASE("parts are sized in the engine's tokens", "[prompt]") {
    PromptBuilder builder(42, two_per_word);
    const auto p = builder.build(0, 512, 256, 32);
    // At least the target (a warm [A,B] short of a block boundary would leave a block uncached),
    // at most 1% over.
    CHECK(p.a_tokens >= 512);
    CHECK(p.a_tokens <= 517);
    CHECK(p.b_tokens >= 256);
    CHECK(p.b_tokens <= 258);
    CHECK(p.q_tokens >= 32);
    CHECK(p.q_tokens <= 33);
    CHECK(*two_per_word(p.a) == p.a_tokens);
    CHECK_FALSE(builder.sizes_estimated());
}

TEST_CASE("the arms are built from the same parts, warm prompt a prefix of the hit", "[prompt]") {
    PromptBuilder builder(7, two_per_word);
    const auto p = builder.build(3, 64, 32, 8);
    CHECK(p.hit().rfind(p.warm(), 0) == 0);
    CHECK(p.miss() == p.b + p.q);
    CHECK(p.hit().find(p.a) == 0);
    CHECK(p.q.back() == '?');
    CHECK(p.b.front() == ' ');  // joins to A at a word boundary, so tokens([A,B]) prefix tokens([A,B,Q])
    CHECK(p.q.front() == ' ');
}

TEST_CASE("the miss starts with another letter than the warm prompt, so no first token is shared", "[prompt]") {
    PromptBuilder builder(11, two_per_word);
    for (int trial = 0; trial < 200; ++trial) {
        const auto p = builder.build(trial, 16, 16, 4);
        REQUIRE(p.warm().size() > 2);
        CHECK(p.miss()[1] != p.warm()[1]);  // both start with " " and a capital
    }
}

TEST_CASE("every trial gets fresh content, and a seed reproduces it", "[prompt]") {
    PromptBuilder a(1, two_per_word), b(1, two_per_word), c(2, two_per_word);
    const auto t0 = a.build(0, 128, 64, 8), t1 = a.build(1, 128, 64, 8);
    CHECK(t0.a != t1.a);
    CHECK(t0.b != t1.b);
    CHECK(t0.q != t1.q);
    CHECK(b.build(0, 128, 64, 8).hit() == t0.hit());
    CHECK(c.build(0, 128, 64, 8).hit() != t0.hit());
    // Even the first words differ: a different first block means no shared cached prefix.
    CHECK(t0.a.substr(0, 20) != t1.a.substr(0, 20));
}

TEST_CASE("without a tokenizer the sizes are estimates, and say so", "[prompt]") {
    PromptBuilder builder(5, [](const std::string&) { return std::optional<int>{}; });
    const auto p = builder.build(0, 130, 65, 13);
    CHECK(builder.sizes_estimated());
    CHECK(p.a_tokens == 130);
}
