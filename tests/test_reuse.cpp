#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "kvgate/engine/reuse.hpp"

using namespace kvgate;

namespace {

// Ids 1000, 1001, ... : distinct content that shares nothing with anything else.
TokenIds fresh(int n, int start) {
    TokenIds ids;
    for (int i = 0; i < n; ++i) ids.push_back(start + i);
    return ids;
}

TokenIds join(std::initializer_list<TokenIds> parts) {
    TokenIds out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// A fake tokenizer whose ids are bytes: the text of a string is its ids.
TokenIds ids_of(const std::string& s) {
    TokenIds ids;
    for (unsigned char c : s) ids.push_back(c);
    return ids;
}

std::string bytes_of(const std::vector<int>& ids) {
    std::string s;
    for (int id : ids) s += static_cast<char>(id);
    return s;
}

const int bos = 2;

}  // namespace

TEST_CASE("reuse granularity: block size 0 and 1 mean single tokens", "[reuse]") {
    CHECK(reuse_granularity(0) == 1);
    CHECK(reuse_granularity(1) == 1);
    CHECK(reuse_granularity(16) == 16);
    CHECK(reuse_granularity(128) == 128);
    CHECK_THROWS_WITH(reuse_granularity(-16), Catch::Contains("block size -16 is negative"));
    CHECK_THROWS_AS(reusable_tokens(-1, 10, 16), std::invalid_argument);
}

TEST_CASE("reusable tokens at block boundaries: whole blocks, and never the last prompt token", "[reuse]") {
    // A shared prefix inside a longer prompt: floored to blocks.
    for (int block : {16, 128}) {
        INFO("block " << block);
        const int n = 3 * block, prompt = 10 * block;
        CHECK(reusable_tokens(n, prompt, block) == n);              // a multiple of the block
        CHECK(reusable_tokens(n - 1, prompt, block) == n - block);  // one short loses a whole block
        CHECK(reusable_tokens(n + 1, prompt, block) == n);          // one over gains nothing
        CHECK(reusable_tokens(block - 1, prompt, block) == 0);
        // A full repeat of an n-token prompt: vLLM hits floor((n - 1) / block) * block.
        CHECK(reusable_tokens(n, n, block) == n - block);
        CHECK(reusable_tokens(n + 1, n + 1, block) == n);
        CHECK(reusable_tokens(n - 1, n - 1, block) == n - block);
        CHECK(reusable_tokens(block, block, block) == 0);
    }
    // Token granularity (llama.cpp): an exact repeat reuses n - 1.
    for (int block : {0, 1}) {
        INFO("block " << block);
        CHECK(reusable_tokens(517, 600, block) == 517);
        CHECK(reusable_tokens(600, 600, block) == 599);
        CHECK(reusable_tokens(1, 1, block) == 0);
    }
    CHECK(reusable_tokens(0, 0, 16) == 0);
    CHECK(reusable_tokens(50, 20, 1) == 19);  // shared cannot exceed what the prompt has
}

TEST_CASE("a hit expects the warm prompt's whole blocks, the template is what the others explain", "[reuse]") {
    const TokenIds header = join({{bos}, fresh(19, 100)});  // 20 tokens: BOS + a system header
    const TokenIds warm = join({header, fresh(500, 1000), fresh(250, 2000)});          // [T, A, B]: 770
    const TokenIds measured = join({warm, fresh(30, 3000)});                           // [T, A, B, Q]
    const TokenIds earlier_miss = join({header, fresh(250, 5000), fresh(30, 6000)});  // [T, B', Q']

    SECTION("block 16") {
        const auto e = expect_hit(warm, measured, {earlier_miss}, 16, 0);
        CHECK(e.expected == 768);
        CHECK(e.shared == 768);
        CHECK(e.template_shared == 16);  // the 20-token header fills one block
        CHECK(e.may == 768);
        CHECK(classify_reuse(768, e) == ReuseClass::full);
        CHECK(classify_reuse(752, e) == ReuseClass::partial);
        CHECK(shortfall_cause(752, e) == Shortfall::server);
        CHECK(classify_reuse(16, e) == ReuseClass::template_only);
        CHECK(classify_reuse(0, e) == ReuseClass::none);
        CHECK(classify_reuse(784, e) == ReuseClass::excess);
        CHECK(classify_reuse(-1, e) == ReuseClass::unknown);
        CHECK(shortfall_cause(768, e) == Shortfall::none);
    }
    SECTION("block 128: the header is shorter than a block, so only the warm prompt counts") {
        const auto e = expect_hit(warm, measured, {earlier_miss}, 128, 0);
        CHECK(e.expected == 768);
        CHECK(e.template_shared == 0);
        CHECK(classify_reuse(640, e) == ReuseClass::partial);
    }
    SECTION("token granularity") {
        const auto e = expect_hit(warm, measured, {earlier_miss}, 0, 0);
        CHECK(e.expected == 770);
        CHECK(e.template_shared == 20);
        CHECK(classify_reuse(770, e) == ReuseClass::full);
        CHECK(classify_reuse(20, e) == ReuseClass::template_only);
        CHECK(classify_reuse(21, e) == ReuseClass::partial);
    }
}

TEST_CASE("a varying value in the template: the renderings diverge and the shortfall is named so", "[reuse]") {
    // [T, time, A, B] warmed; the measured prompt is rendered a second later with another time.
    const TokenIds header = join({{bos}, fresh(40, 100)});
    const TokenIds a = fresh(500, 1000), b = fresh(250, 2000), q = fresh(30, 3000);
    const TokenIds warm = join({header, {7001, 7002}, a, b});
    const TokenIds measured = join({header, {7001, 7003}, a, b, q});
    const auto e = expect_hit(warm, measured, {}, 16, 0);
    CHECK(e.expected == 784);  // 793 warm tokens, 49 blocks
    CHECK(e.shared == 32);     // 42 tokens agree: two blocks
    CHECK(e.may == 32);
    // What vLLM would report here: all that the rendering allows, still a regression.
    CHECK(classify_reuse(32, e) == ReuseClass::partial);
    CHECK(shortfall_cause(32, e) == Shortfall::rendering);
    CHECK(shortfall_cause(16, e) == Shortfall::both);
    CHECK(classify_reuse(48, e) == ReuseClass::excess);
}

TEST_CASE("a miss may reuse only what it shares with earlier prompts", "[reuse]") {
    const TokenIds header = join({{bos}, fresh(35, 100)});  // 36 tokens
    const TokenIds warm = join({header, fresh(500, 1000), fresh(250, 2000)});
    const TokenIds miss = join({header, fresh(250, 5000), fresh(30, 6000)});
    SECTION("block 16: two blocks of template") {
        const auto e = expect_miss(miss, {warm}, 16);
        CHECK(e.expected == 0);
        CHECK(e.may == 32);
        CHECK(classify_reuse(0, e) == ReuseClass::none);
        CHECK(classify_reuse(32, e) == ReuseClass::template_only);
        CHECK(classify_reuse(48, e) == ReuseClass::excess);
        CHECK(shortfall_cause(0, e) == Shortfall::none);
    }
    SECTION("nothing sent before") {
        const auto e = expect_miss(miss, {}, 16);
        CHECK(e.may == 0);
        CHECK(classify_reuse(16, e) == ReuseClass::excess);
    }
    SECTION("the longest of several earlier prompts counts") {
        const TokenIds longer = join({header, fresh(250, 5000), fresh(5, 9000)});  // shares [T, B'] with the miss
        const auto e = expect_miss(miss, {warm, longer}, 16);
        CHECK(e.may == 272);  // 286 shared, 17 blocks
        CHECK(classify_reuse(272, e) == ReuseClass::template_only);
    }
}

TEST_CASE("BOS: a shared first token is template at token granularity, nothing at block 16", "[reuse]") {
    const TokenIds warm = join({{bos}, fresh(300, 1000)});
    const TokenIds miss = join({{bos}, fresh(100, 5000)});
    // llama.cpp was seen to report cached_tokens 1 on an unrelated "miss": the BOS.
    CHECK(classify_reuse(1, expect_miss(miss, {warm}, 0)) == ReuseClass::template_only);
    CHECK(classify_reuse(1, expect_miss(miss, {warm}, 16)) == ReuseClass::excess);
    CHECK(classify_reuse(0, expect_miss(miss, {warm}, 16)) == ReuseClass::none);

    // A client that renders the warm prompt without BOS and the measured one with it shares nothing.
    const TokenIds warm_no_bos = fresh(300, 1000);
    const TokenIds measured = join({{bos}, warm_no_bos, fresh(20, 3000)});
    const auto e = expect_hit(warm_no_bos, measured, {}, 0, 0);
    CHECK(e.expected == 300);
    CHECK(e.shared == 0);
    CHECK(shortfall_cause(0, e) == Shortfall::rendering);
    // A second BOS where the query was tokenized on its own keeps the warm prompt a prefix.
    const TokenIds twice = join({warm, {bos}, fresh(20, 3000)});
    CHECK(expect_hit(warm, twice, {}, 1, 0).shared == 301);
}

TEST_CASE("a full repeat as the hit: the last token is recomputed", "[reuse]") {
    const TokenIds p = fresh(256, 1000);
    CHECK(expect_hit(p, p, {}, 16, 0).expected == 240);
    CHECK(expect_hit(p, p, {}, 128, 0).expected == 128);
    CHECK(expect_hit(p, p, {}, 0, 0).expected == 255);
}

TEST_CASE("block rounding: how much of the warm prompt the block size hides, in numbers", "[reuse]") {
    const TokenIds warm = fresh(863, 1000);
    const TokenIds measured = join({warm, fresh(30, 3000)});
    const auto r = block_rounding(warm, measured, 128);
    CHECK(r.reusable_by_tokens == 863);
    CHECK(r.reusable == 768);
    CHECK(r.hidden == 95);
    CHECK(r.hidden_fraction == Approx(95.0 / 863));
    CHECK(r.notable);
    CHECK_THAT(r.message, Catch::Contains("block size 128") && Catch::Contains("95 of the warm prompt's 863 tokens") &&
                              Catch::Contains("11.0%") && Catch::Contains("6 x 128 = 768") &&
                              Catch::Contains("896 tokens"));

    const auto r16 = block_rounding(warm, measured, 16);
    CHECK(r16.hidden == 15);
    CHECK_FALSE(r16.notable);
    CHECK(block_rounding(warm, measured, 16, 0.01).notable);

    const auto exact = block_rounding(fresh(768, 1000), join({fresh(768, 1000), fresh(30, 3000)}), 128);
    CHECK(exact.hidden == 0);
    CHECK(exact.message.empty());
    CHECK(block_rounding(warm, measured, 0).hidden == 0);
    // A warm prompt shorter than a block is hidden entirely.
    const auto small = block_rounding(fresh(100, 1000), join({fresh(100, 1000), fresh(30, 3000)}), 128);
    CHECK(small.hidden == 100);
    CHECK(small.hidden_fraction == Approx(1.0));
}

TEST_CASE("divergence: the first differing token and the text around it", "[reuse]") {
    SECTION("in the middle: a time in the template") {
        const std::string head = "<|system|>You are helpful. The time is 2026-11-29 09:31:";
        const TokenIds a = ids_of(head + "07.446 now.<|user|>Summarise the report.");
        const TokenIds b = ids_of(head + "18.112 now.<|user|>Summarise the report.");
        const auto d = find_divergence(a, b, bytes_of, 8);
        REQUIRE(d.differs);
        CHECK(d.position == static_cast<int>(head.size()));
        CHECK_FALSE(d.a_ended);
        CHECK_FALSE(d.b_ended);
        CHECK(d.context_a == "\xe2\x80\xa6" "9 09:31:07.446 n\xe2\x80\xa6");
        CHECK(d.context_b == "\xe2\x80\xa6" "9 09:31:18.112 n\xe2\x80\xa6");
        CHECK(d.message == "the rendered prompt differs at token 56 (the first 56 agree): '\xe2\x80\xa6" "9 09:31:07.446 "
                           "n\xe2\x80\xa6' vs '\xe2\x80\xa6" "9 09:31:18.112 n\xe2\x80\xa6'");
    }
    SECTION("at token 0: no leading ellipsis") {
        const auto d = find_divergence(ids_of("abcdef"), ids_of("xbcdef"), bytes_of, 3);
        CHECK(d.position == 0);
        CHECK(d.context_a == "abc\xe2\x80\xa6");
        CHECK(d.context_b == "xbc\xe2\x80\xa6");
    }
    SECTION("one a prefix of the other") {
        const auto d = find_divergence(ids_of("warm prompt"), ids_of("warm prompt and query"), bytes_of, 4);
        CHECK(d.differs);
        CHECK(d.position == 11);
        CHECK(d.a_ended);
        CHECK(d.context_a == "\xe2\x80\xa6ompt");
        CHECK(d.context_b == "\xe2\x80\xa6ompt and\xe2\x80\xa6");
        CHECK_THAT(d.message, Catch::Contains("at token 11") && Catch::Contains("the first ends there"));
        const auto r = find_divergence(ids_of("warm prompt and query"), ids_of("warm prompt"), bytes_of, 4);
        CHECK(r.b_ended);
        CHECK_THAT(r.message, Catch::Contains("the second ends there"));
        const auto empty = find_divergence({}, ids_of("x"), bytes_of);
        CHECK(empty.position == 0);
        CHECK(empty.a_ended);
    }
    SECTION("equal sequences do not differ") {
        const auto d = find_divergence(ids_of("same"), ids_of("same"), bytes_of);
        CHECK_FALSE(d.differs);
        CHECK(d.message.empty());
        CHECK_FALSE(find_divergence({}, {}, bytes_of).differs);
    }
    SECTION("the context is valid UTF-8 on one line, whatever the window cuts") {
        // "é" is two bytes; a window starting between them leaves a lone continuation byte.
        const TokenIds a = ids_of("caf\xc3\xa9\nline\xff two");
        TokenIds b = a;
        b[9] = 'X';
        const auto d = find_divergence(a, b, bytes_of, 5);
        CHECK(d.position == 9);
        CHECK(d.context_a == "\xe2\x80\xa6\xef\xbf\xbd\\nline\xef\xbf\xbd tw\xe2\x80\xa6");
        CHECK(d.context_b == "\xe2\x80\xa6\xef\xbf\xbd\\nlinX\xef\xbf\xbd tw\xe2\x80\xa6");
    }
    SECTION("misuse and detokenizer failures") {
        CHECK_THROWS_AS(find_divergence({1}, {2}, Detokenize{}), std::invalid_argument);
        const Detokenize broken = [](const std::vector<int>&) -> std::string {
            throw std::runtime_error("detokenize: HTTP 503");
        };
        CHECK_THROWS_WITH(find_divergence({1}, {2}, broken), "detokenize: HTTP 503");
    }
}
