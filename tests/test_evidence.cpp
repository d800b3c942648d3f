#include <catch2/catch.hpp>

#include "kvgate/engine/evidence.hpp"

using namespace kvgate;

TEST_CASE("a Prometheus exposition is read line by line, skipping comments and malformed lines", "[evidence]") {
    const auto samples = parse_prometheus("# HELP x\nx_total{a=\"1\",b=\"two\"} 3.5\ny 2\ngarbage\n\n");
    REQUIRE(samples.size() == 2);
    CHECK(samples[0].name == "x_total");
    CHECK(detail::label_value(samples[0].labels, "b") == "two");
    CHECK(samples[0].value == 3.5);
    CHECK(samples[1].name == "y");
    CHECK(samples[1].labels.empty());
}

TEST_CASE("deltas and block-granular expectations", "[evidence]") {
    const auto d = counter_deltas({true, 100, 40}, {true, 900, 424});
    CHECK(d.available);
    CHECK(d.queries == 800);
    CHECK(d.hits == 384);
}

TEST_CASE("a hit must show the whole blocks of its warm prompt, less the template's suffix", "[evidence]") {
    const TemplateShape none{0, 0};
    CHECK(expected_hit_cached_tokens(770, 802, 128, none) == 768);
    CHECK(expected_hit_cached_tokens(100, 132, 128, none) == 0);
    CHECK(expected_hit_cached_tokens(800, 832, 16, none) == 800);
    // Llama 3 style: 5 tokens after the content, which the measured prompt replaces with Q.
    CHECK(expected_hit_cached_tokens(805, 837, 16, TemplateShape{25, 5}) == 800);
    CHECK(expected_hit_cached_tokens(770, 771, 1, none) == 770);  // token granularity, last token computed
    CHECK(expected_hit_cached_tokens(770, 770, 1, none) == 769);
    CHECK(hit_rule_known(16, TemplateShape{25, 5}));
    CHECK_FALSE(hit_rule_known(0, TemplateShape{25, 5}));
    CHECK_FALSE(hit_rule_known(16, TemplateShape{}));
}

TEST_CASE("a miss may show the whole blocks of the template's shared prefix, and nothing more", "[evidence]") {
    CHECK(miss_cached_tokens_allowed(300, 16, TemplateShape{25, 5}) == 16);
    CHECK(miss_cached_tokens_allowed(300, 16, TemplateShape{40, 5}) == 32);
    CHECK(miss_cached_tokens_allowed(300, 128, TemplateShape{40, 5}) == 0);
    CHECK(miss_cached_tokens_allowed(300, 0, TemplateShape{3, 0}) == 3);  // token granularity
    // Template unknown: less than one block (block unknown: nothing).
    CHECK(miss_cached_tokens_allowed(300, 128, TemplateShape{}) == 127);
    CHECK(miss_cached_tokens_allowed(300, 0, TemplateShape{}) == 0);
}

TEST_CASE("the template's shape is the common prefix and suffix of two renderings", "[evidence]") {
    // header (3 ids), content, footer (2 ids)
    const auto shape = template_shape({1, 2, 3, 10, 11, 12, 8, 9}, {1, 2, 3, 20, 21, 8, 9});
    CHECK(shape.prefix_tokens == 3);
    CHECK(shape.suffix_tokens == 2);
    CHECK(shape.known());
    const auto bare = template_shape({2, 10, 11}, {2, 20});  // a BOS, no footer
    CHECK(bare.prefix_tokens == 1);
    CHECK(bare.suffix_tokens == 0);
    CHECK_FALSE(TemplateShape{}.known());
}

TEST_CASE("the header's cached share from the warm requests: the least after the first, none unreported",
          "[evidence]") {
    CHECK(least_warm_cached({0, 32, 32, 48}) == 32);
    CHECK(least_warm_cached({0}) == -1);
    CHECK(least_warm_cached({0, 32, -1}) == -1);
    CHECK(miss_cached_tokens_allowed(300, 16, TemplateShape{}, 32) == 32);
    CHECK(miss_cached_tokens_allowed(300, 16, TemplateShape{}, 0) == 15);
    CHECK(miss_cached_tokens_allowed(20, 16, TemplateShape{}, 32) == 19);  // never the whole prompt
}
