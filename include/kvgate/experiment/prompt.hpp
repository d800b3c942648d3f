// Contexts A and B and query Q, with fresh content for every trial, sized in the model's tokens.
//
// Fresh content: every trial draws its own words, so no trial is served from a cache an earlier
// trial (or an earlier run: the seed is drawn per run) left behind. Each part is whole sentences
// and the next part starts with a space, so with the usual tokenizers (GPT-2 style byte-level BPE,
// SentencePiece) tokens([A,B]) is an exact prefix of tokens([A,B,Q]).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>

namespace kvgate {

struct TrialPrompts {
    std::string a, b, q, a_cold;  // a_cold: A', fresh content as long as A (in tokens)
    int a_tokens = 0, b_tokens = 0, q_tokens = 0, a_cold_tokens = 0;  // as counted (or estimated) when built
    std::string warm() const { return a + b; }           // [A,B]
    std::string hit() const { return a + b + q; }        // [A,B,Q]
    std::string miss() const { return b + q; }           // [B,Q]
    std::string cold() const { return a_cold + b + q; }  // [A',B,Q]
};

// Counts a text's tokens as the engine sees it; nullopt when it cannot.
using TokenCounter = std::function<std::optional<int>(const std::string&)>;

class PromptBuilder {
public:
    PromptBuilder(std::uint64_t seed, TokenCounter count) : seed_(seed), count_(std::move(count)) {}

    // Builds one trial's parts; trial indexes give independent content.
    TrialPrompts build(int trial, int a_tokens, int b_tokens, int q_tokens) {
        TrialPrompts p;
        p.a = sized(trial, 0, a_tokens, false, p.a_tokens);
        p.b = sized(trial, 1, b_tokens, false, p.b_tokens);
        p.q = sized(trial, 2, q_tokens, true, p.q_tokens);
        // A' as long as A as counted (A may be a token or two over its target), so cold and hit
        // prompts have the same length.
        p.a_cold = sized(trial, 3, std::max(1, p.a_tokens), false, p.a_cold_tokens);
        return p;
    }

    // True when some size could not be asked of the engine and was estimated.
    bool sizes_estimated() const { return estimated_; }

private:
    static constexpr double kEstimatedTokensPerWord = 1.3;  // English text, BPE-style tokenizers

    // A part of at least `target` tokens and at most 1% more. Never fewer: the default sizes
    // (512 + 256) are a whole number of KV blocks, and a warm prompt one token short of that would
    // leave a whole block uncached, making the hit arm's recompute jump from ~Q to ~Q + a block.
    std::string sized(int trial, int part, int target, bool question, int& tokens_out) {
        const int slack = std::max(1, target / 100);
        // Start from the running tokens-per-word estimate, then correct from the engine's counts:
        // counts are close to linear in the word count, so a few rounds land in range.
        int words = std::max(1, static_cast<int>(std::lround(target / tokens_per_word_)));
        std::string text;
        int best = -1;
        auto better = [&](int counted) {
            if (best < 0) return true;
            if ((counted >= target) != (best >= target)) return counted >= target;
            return counted >= target ? counted < best : counted > best;
        };
        for (int round = 0; round < 10; ++round) {
            std::string candidate = words_text(trial, part, words, question);
            auto counted = count_(candidate);
            if (!counted) {
                estimated_ = true;
                tokens_out = static_cast<int>(std::lround(words * kEstimatedTokensPerWord));
                return candidate;
            }
            if (better(*counted)) {
                best = *counted;
                text = candidate;
            }
            if (*counted >= target && *counted <= target + slack) break;
            tokens_per_word_ = std::clamp(static_cast<double>(*counted) / words, 0.5, 8.0);
            const double step = (target + slack / 2.0 - *counted) / tokens_per_word_;
            words = std::max(1, words + static_cast<int>(step > 0 ? std::ceil(step) : std::min(-1.0, std::trunc(step))));
        }
        tokens_out = best;
        return text;
    }

    // `words` words of deterministic pseudo-random English, as sentences; a leading space joins it
    // to whatever comes before.
    std::string words_text(int trial, int part, int words, bool question) const {
        static constexpr std::array<const char*, 96> kWords = {
            "river",   "stone",   "market", "garden",  "window", "engine",  "letter", "winter", "silver", "forest",
            "harbor",  "bridge",  "candle", "mirror",  "valley", "thunder", "pocket", "ladder", "meadow", "castle",
            "planet",  "signal",  "copper", "pepper",  "butter", "basket",  "rocket", "violet", "anchor", "saddle",
            "lantern", "orchard", "quartz", "parade",  "tunnel", "glacier", "banner", "marble", "cotton", "falcon",
            "compass", "harvest", "kettle", "blanket", "canyon", "feather", "goblet", "hammer", "island", "jacket",
            "kitten",  "lemon",   "magnet", "needle",  "oyster", "pillow",  "quiver", "ribbon", "shadow", "timber",
            "umbrella", "velvet", "walnut", "yellow",  "zephyr", "amber",   "breeze", "cinder", "dragon", "ember",
            "fable",   "granite", "hollow", "ivory",   "jungle", "kernel",  "lagoon", "meteor", "nectar", "olive",
            "prairie", "quarry",  "raven",  "summit",  "tangle", "unicorn", "vessel", "willow", "yonder", "zenith",
            "atlas",   "beacon",  "cobalt", "delta",   "echo",   "fjord"};
        auto rng_of = [&](int of_part) {
            return std::mt19937_64(seed_ ^
                                   (0x9E3779B97F4A7C15ULL * (static_cast<std::uint64_t>(trial) * 4 + of_part + 1)));
        };
        std::mt19937_64 rng = rng_of(part);
        std::uniform_int_distribution<std::size_t> pick(0, kWords.size() - 1);
        // B and A' start with another letter than A: the miss [B,Q] and the cold [A',B,Q] then share no
        // first token with the warm [A,B] (tokenizers split a capitalised word as " R" + "iver"), which an
        // engine that reuses single tokens (llama.cpp) would otherwise report as a cached token of theirs.
        char avoid = 0;
        if (part == 1 || part == 3) {
            std::mt19937_64 a_rng = rng_of(0);
            avoid = kWords[pick(a_rng)][0];
        }
        std::string text;
        for (int i = 0; i < words; ++i) {
            const bool sentence_start = i % 12 == 0;
            std::string w = kWords[pick(rng)];
            while (i == 0 && w[0] == avoid) w = kWords[pick(rng)];
            if (sentence_start) w[0] = static_cast<char>(w[0] - 'a' + 'A');
            text += ' ';
            text += w;
            if (i % 12 == 11 || i + 1 == words) text += (question && i + 1 == words) ? '?' : '.';
        }
        return text;
    }

    std::uint64_t seed_;
    TokenCounter count_;
    double tokens_per_word_ = kEstimatedTokensPerWord;
    bool estimated_ = false;
};

}  // namespace kvgate
