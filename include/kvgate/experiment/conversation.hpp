// Experiment 2's multi-turn conversation, its edits, the reuse they allow, and the sweep over them.
//
// A conversation is a system message and `exchanges` exchanges, each a user message and the
// assistant's reply, sent as separate chat `messages` so the engine's chat template applies between
// them. Edits work on whole exchanges: strict templates (Llama 2, Mistral, ...) reject a
// conversation whose roles do not alternate, and trimming history drops exchanges in practice.
//
// What is sent, per cell of the sweep (every cell draws fresh content, so no cell is served from a
// cache another cell left behind):
//   warm     = [system, user0, assistant0, ..., user(N-1), assistant(N-1)]    (the unedited one)
//   measured = edit(warm) + [query]                                           (the next request)
// with the edit one of
//   none     : nothing removed: the full hit, the floor every edit is compared with;
//   remove k : exchange k left out;
//   replace k: exchange k's two messages replaced by fresh content of the same token counts;
//   truncate k: exchanges 0..k left out (the oldest k+1), the system message kept.
//
// Sizes are in the model's tokens and include the template's overhead: a message's size is what it
// adds to the rendered prompt (role headers, separators, and for the system message the BOS and any
// preamble), counted as count(messages[0..i]) - count(messages[0..i-1]). So the context's token
// total is the sum of its message sizes, whatever the template adds per turn. Each message boundary
// lands at the running sum of the shape's sizes or up to 1% (at least 1 token) after it where the
// words allow; with a real BPE a word is 1-4 tokens, and the default model's tokenizer gave
// boundaries 0-3 tokens late, never early, with no drift along the conversation.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kvgate/model/message.hpp"

namespace kvgate {

// Tokens of `messages` rendered by the engine's chat template *without* a generation prompt (vLLM:
// POST /tokenize {"messages": ..., "add_generation_prompt": false}; in-process:
// tokenizer.apply_chat_template(..., add_generation_prompt=False)), BOS included; nullopt when the
// engine cannot count. Without the generation prompt, the count of a prefix of the messages is
// where the next message starts in any longer rendering.
using MessageCounter = std::function<std::optional<int>(const std::vector<Message>&)>;

struct ConversationShape {
    int system_tokens = 64;     // the system message, BOS and template preamble included
    int user_tokens = 24;       // each user message, its role header included
    int assistant_tokens = 40;  // each assistant reply, its role header included
    int query_tokens = 32;      // the measured request's new user message

    int exchange_tokens() const { return user_tokens + assistant_tokens; }

    // Exchanges that bring the warm conversation closest to `context_tokens` (at least one).
    int exchanges_for(int context_tokens) const {
        return std::max(1, static_cast<int>(std::lround(static_cast<double>(context_tokens - system_tokens) /
                                                        exchange_tokens())));
    }

    void validate() const {
        for (auto [v, name] : {std::pair{system_tokens, "system_tokens"}, std::pair{user_tokens, "user_tokens"},
                               std::pair{assistant_tokens, "assistant_tokens"}, std::pair{query_tokens, "query_tokens"}})
            if (v < 1)
                throw std::invalid_argument(std::string("conversation shape: ") + name + " is " + std::to_string(v) +
                                            "; give a size of at least 1 token");
    }
};

struct Conversation {
    std::vector<Message> messages;  // warm: [system, (user, assistant) x exchanges]
    std::vector<int> tokens;        // what each message adds to the rendered prompt
    Message query;                  // the measured request's new user message
    int query_tokens = 0;
    std::uint64_t draw = 0;         // the content draw it was built from

    int exchanges() const { return static_cast<int>(messages.size() - 1) / 2; }
    int warm_tokens() const { return std::accumulate(tokens.begin(), tokens.end(), 0); }
    static std::size_t user_index(int exchange) { return 1 + 2 * static_cast<std::size_t>(exchange); }
};

enum class EditKind { none, remove, replace, truncate };

inline const char* edit_kind_name(EditKind k) {
    switch (k) {
        case EditKind::none: return "none";
        case EditKind::remove: return "remove";
        case EditKind::replace: return "replace";
        case EditKind::truncate: return "truncate";
    }
    return "?";
}

struct Edit {
    EditKind kind = EditKind::none;
    int exchange = 0;  // the exchange edited (remove, replace) or the last one dropped (truncate)
};

// The measured request's messages and how they line up with the warm ones.
struct MeasuredConversation {
    std::vector<Message> messages;  // edit(warm) + [query]
    std::vector<int> tokens;        // what each message adds to the rendered prompt
    std::size_t first_changed = 0;  // index of the first message that differs from the warm one
    // Warm tokens before the first changed message: where the prompts part by the message counts.
    // With the token ids (predict_reuse below) the parting point can be later, by the tokens the
    // changed message's role header shares with the warm one, never earlier.
    int shared_tokens = 0;
    int total_tokens() const { return std::accumulate(tokens.begin(), tokens.end(), 0); }
};

class ConversationBuilder {
public:
    ConversationBuilder(std::uint64_t seed, MessageCounter count) : seed_(seed), count_(std::move(count)) {}

    // The warm conversation of draw `draw`: distinct draws give unrelated content from their first
    // word on; the same seed and draw give the same content.
    Conversation build(std::uint64_t draw, const ConversationShape& shape, int exchanges) {
        shape.validate();
        if (exchanges < 1)
            throw std::invalid_argument("conversation: " + std::to_string(exchanges) +
                                        " exchanges; give at least 1 (a larger context or smaller turns)");
        Conversation c;
        c.draw = draw;
        int rendered = 0, nominal = 0;  // count(c.messages); the sum of their targets
        // Each message is sized so the conversation so far reaches its nominal total: a message a
        // token or two over (a word is 1-4 tokens) is made up by the next, so message boundaries,
        // and with them the edit positions, stay on the nominal grid instead of drifting.
        auto add = [&](Role role, int target, std::uint64_t stream) {
            nominal += target;
            auto [text, tokens] = sized(c.messages, rendered, role, std::max(1, nominal - rendered), draw, stream);
            c.messages.push_back({role, std::move(text)});
            c.tokens.push_back(tokens);
            rendered += tokens;
        };
        add(Role::system, shape.system_tokens, 0);
        for (int k = 0; k < exchanges; ++k) {
            add(Role::user, shape.user_tokens, Conversation::user_index(k));
            add(Role::assistant, shape.assistant_tokens, Conversation::user_index(k) + 1);
        }
        auto [text, tokens] = sized(c.messages, rendered, Role::user, shape.query_tokens, draw, kQueryStream);
        c.query = {Role::user, std::move(text)};
        c.query_tokens = tokens;
        return c;
    }

    // The measured request after `edit`; a replacement draws fresh content (of this builder's seed
    // and the conversation's draw) sized to the replaced messages' token counts in place.
    MeasuredConversation measured(const Conversation& warm, const Edit& edit) {
        const int n = warm.exchanges();
        if (edit.kind != EditKind::none && (edit.exchange < 0 || edit.exchange >= n))
            throw std::invalid_argument(std::string("edit ") + edit_kind_name(edit.kind) + " at exchange " +
                                        std::to_string(edit.exchange) + ": the conversation has exchanges 0.." +
                                        std::to_string(n - 1));
        MeasuredConversation m;
        const std::size_t at = Conversation::user_index(edit.exchange);
        // Kept messages keep their warm sizes: templates render each message on its own (where one
        // does not, e.g. folding the system message into the first user turn, the token ids are
        // still exact and the counts are not).
        auto keep = [&](std::size_t from, std::size_t to) {
            for (std::size_t i = from; i < to; ++i) {
                m.messages.push_back(warm.messages[i]);
                m.tokens.push_back(warm.tokens[i]);
            }
        };
        switch (edit.kind) {
            case EditKind::none:
                keep(0, warm.messages.size());
                m.first_changed = warm.messages.size();
                break;
            case EditKind::remove:
                keep(0, at);
                keep(at + 2, warm.messages.size());
                m.first_changed = at;
                break;
            case EditKind::truncate:
                keep(0, 1);
                keep(at + 2, warm.messages.size());
                m.first_changed = 1;
                break;
            case EditKind::replace: {
                keep(0, at);
                int rendered = std::accumulate(m.tokens.begin(), m.tokens.end(), 0);
                for (std::size_t i = at; i < at + 2; ++i) {
                    const auto& old = warm.messages[i];
                    auto [text, tokens] = sized(m.messages, rendered, old.role, warm.tokens[i], warm.draw,
                                                 kReplaceStream + i);
                    m.messages.push_back({old.role, std::move(text)});
                    m.tokens.push_back(tokens);
                    rendered += tokens;
                }
                keep(at + 2, warm.messages.size());
                m.first_changed = at;
                break;
            }
        }
        m.messages.push_back(warm.query);
        m.tokens.push_back(warm.query_tokens);
        m.shared_tokens = std::accumulate(warm.tokens.begin(), warm.tokens.begin() + static_cast<long>(m.first_changed), 0);
        return m;
    }

    // True when the engine could not count and sizes are estimates (no template overhead in them).
    bool sizes_estimated() const { return estimated_; }

private:
    static constexpr double kEstimatedTokensPerWord = 1.3;  // English text, BPE-style tokenizers
    static constexpr std::uint64_t kQueryStream = 1ULL << 32;
    static constexpr std::uint64_t kReplaceStream = 2ULL << 32;
    static constexpr std::uint64_t kCalibrationStream = 3ULL << 32;

    // A role's template overhead, as the mean of what its messages added besides their words.
    struct RunningMean {
        double sum = 0;
        int n = 0;
        void add(double x) { sum += x, ++n; }
        double mean() const { return n ? sum / n : 0; }
    };

    // Content for a message appended to `prefix` (which renders to `rendered` tokens) that adds at
    // least `target` tokens and at most 1% more (1 token for short messages) where the words allow;
    // else the closest above it (a word is 1-4 tokens, so some targets fall between two word
    // counts). Every count is a call to the engine, so the guess is made good before the first one:
    // a message adds (its role's template overhead) + (tokens per word) x (words); tokens per word
    // is calibrated once per builder, and each role's overhead is learned from its messages so far.
    std::pair<std::string, int> sized(std::vector<Message> prefix, int rendered, Role role, int target,
                                      std::uint64_t draw, std::uint64_t stream) {
        const bool question = role == Role::user;
        if (!estimated_ && tokens_per_word_ == 0) calibrate();
        if (estimated_) {
            const int words = std::max(1, static_cast<int>(std::lround(target / kEstimatedTokensPerWord)));
            return {words_text(draw, stream, words, question), static_cast<int>(std::lround(words * kEstimatedTokensPerWord))};
        }
        const int slack = std::max(1, target / 100);
        auto& learned = overhead_[static_cast<int>(role)];
        int words = std::max(1, static_cast<int>(std::lround((target - learned.mean()) / tokens_per_word_)));
        prefix.push_back({role, {}});
        std::string best_text;
        int best = -1;
        auto better = [&](int counted) {
            if (best < 0) return true;
            if ((counted >= target) != (best >= target)) return counted >= target;
            return counted >= target ? counted < best : counted > best;
        };
        std::vector<int> tried;
        for (int round = 0; round < 8; ++round) {
            prefix.back().content = words_text(draw, stream, words, question);
            const auto total = count_(prefix);
            if (!total) {
                estimated_ = true;
                return sized({}, 0, role, target, draw, stream);
            }
            const int counted = *total - rendered;
            learned.add(counted - tokens_per_word_ * words);
            tried.push_back(words);
            if (better(counted)) {
                best = counted;
                best_text = prefix.back().content;
            }
            if (counted >= target && counted <= target + slack) break;
            const double step = (target + slack / 2.0 - counted) / tokens_per_word_;
            const int next = std::max(1, words + static_cast<int>(step > 0 ? std::ceil(step) : std::min(-1.0, std::trunc(step))));
            // A word count already tried: the target lies between two word counts (or one word
            // already overshoots it: the template's overhead exceeds the target).
            if (std::find(tried.begin(), tried.end(), next) != tried.end()) break;
            words = next;
        }
        return {best_text, best};
    }

    // Tokens per word of the generated text, from two lengths of one message (the template's
    // overhead cancels in the difference); two counts per builder.
    void calibrate() {
        constexpr int kShort = 40, kLong = 200;
        std::array<std::optional<int>, 2> counts;
        for (int i = 0; i < 2; ++i)
            counts[i] = count_({{Role::system, words_text(0, kCalibrationStream, i == 0 ? kShort : kLong, false)}});
        if (!counts[0] || !counts[1]) {
            estimated_ = true;
            return;
        }
        tokens_per_word_ = std::clamp(static_cast<double>(*counts[1] - *counts[0]) / (kLong - kShort), 0.25, 8.0);
    }

    // `words` words of deterministic pseudo-random English, as sentences; user messages end in a
    // question mark. A leading space joins it to whatever a concatenating template puts before it,
    // so a message boundary is a word boundary for byte-level BPE and SentencePiece tokenizers.
    std::string words_text(std::uint64_t draw, std::uint64_t stream, int words, bool question) const {
        static constexpr std::array<const char*, 64> kWords = {
            "apple",  "branch", "cloud",  "desert", "eagle",  "fabric", "gravel", "hazel",  "iron",   "jewel",
            "kayak",  "linen",  "maple",  "noble",  "ocean",  "paper",  "quilt",  "rustic", "sandal", "tulip",
            "urban",  "vapor",  "wagon",  "yarn",   "zebra",  "acorn",  "bishop", "cedar",  "dune",   "elbow",
            "frost",  "grape",  "harp",   "inlet",  "jasper", "knot",   "lunar",  "mango",  "nickel", "opal",
            "pearl",  "quill",  "reef",   "spruce", "thistle", "utmost", "vine",  "wheat",  "yeast",  "zinc",
            "arrow",  "bell",   "coral",  "drum",   "easel",  "flint",  "glove",  "honey",  "ink",    "jade",
            "kite",   "lily",   "moss",   "nut"};
        std::mt19937_64 rng(mix(seed_ ^ mix(draw ^ mix(stream + 0x5EEDULL))));
        std::uniform_int_distribution<std::size_t> pick(0, kWords.size() - 1);
        std::string text;
        for (int i = 0; i < words; ++i) {
            std::string w = kWords[pick(rng)];
            if (i % 10 == 0) w[0] = static_cast<char>(w[0] - 'a' + 'A');
            text += ' ';
            text += w;
            if (i % 10 == 9 || i + 1 == words) text += (question && i + 1 == words) ? '?' : '.';
        }
        return text;
    }

    // splitmix64's finalizer: nearby (seed, draw, stream) triples give unrelated generator states.
    static std::uint64_t mix(std::uint64_t x) {
        x += 0x9E3779B97F4A7C15ULL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
        return x ^ (x >> 31);
    }

    std::uint64_t seed_;
    MessageCounter count_;
    double tokens_per_word_ = 0;  // 0: not calibrated yet
    std::array<RunningMean, 3> overhead_{};  // per role: tokens a message adds besides its words
    bool estimated_ = false;
};

// ---------------------------------------------------------------------------------------------
// Predicted reuse: the engine caches whole blocks of the warm prompt; the measured request reuses
// those that are a token prefix of it, and never its own last token (the engine must compute at
// least one token to produce logits: a full repeat of an n-token prompt hits floor((n-1)/block)
// blocks). Everything after is recomputed.

struct ReusePrediction {
    int shared_tokens = 0;     // length of the common token prefix of the warm and measured prompts
    int measured_tokens = 0;   // the measured prompt's tokens
    int reuse_tokens = 0;      // whole blocks before the first changed token
    int recompute_tokens = 0;  // measured_tokens - reuse_tokens
    bool block_known = true;   // false: block size unknown; reuse is the token-exact upper bound
};

// From the shared prefix length. block_size <= 0 means unknown: reuse is then counted to the token
// (what a block of 1 would give), an upper bound, and block_known says so.
inline ReusePrediction predict_reuse(int shared_tokens, int measured_tokens, int block_size) {
    if (shared_tokens < 0 || measured_tokens < 1 || shared_tokens > measured_tokens)
        throw std::invalid_argument("predict_reuse: shared " + std::to_string(shared_tokens) + " of " +
                                    std::to_string(measured_tokens) +
                                    " measured tokens; need 0 <= shared <= measured and measured >= 1");
    ReusePrediction p;
    p.shared_tokens = shared_tokens;
    p.measured_tokens = measured_tokens;
    p.block_known = block_size > 0;
    const int block = p.block_known ? block_size : 1;
    const int cacheable = std::min(shared_tokens, measured_tokens - 1);
    p.reuse_tokens = cacheable / block * block;
    p.recompute_tokens = measured_tokens - p.reuse_tokens;
    return p;
}

// From the token ids of the rendered warm and measured prompts (exact: includes whatever the
// template shares, such as a role header common to the removed and the following message).
inline ReusePrediction predict_reuse(const std::vector<int>& warm_ids, const std::vector<int>& measured_ids,
                                     int block_size) {
    const auto parted = std::mismatch(warm_ids.begin(), warm_ids.end(), measured_ids.begin(), measured_ids.end());
    return predict_reuse(static_cast<int>(parted.first - warm_ids.begin()), static_cast<int>(measured_ids.size()),
                         block_size);
}

// From the message counts alone (no token ids): the shared prefix ends where the first changed
// message starts, which can only be earlier than the token-exact point, so reuse is a lower bound.
// `generation_prompt_tokens`: what the engine's template appends for the reply (0 for the default
// local model); the measured prompt's size is then the messages' sum plus it.
inline ReusePrediction predict_reuse(const MeasuredConversation& m, int block_size, int generation_prompt_tokens = 0) {
    return predict_reuse(m.shared_tokens, m.total_tokens() + generation_prompt_tokens, block_size);
}

// ---------------------------------------------------------------------------------------------
// The sweep: edit positions as fractions of the conversation (0 = the first exchange, 1 = the
// last), at several context lengths, each edit kind at every position, plus the full hit.

struct SweepPoint {
    int context_tokens = 0;  // the requested context length
    int exchanges = 0;       // exchanges that length gives with the shape
    double position = 0;     // requested fraction; the edit is at exchange round(position * (exchanges - 1))
    Edit edit;
};

struct SweepSpec {
    ConversationShape shape;
    std::vector<int> context_tokens = {384, 576};
    std::vector<double> positions = {0, 0.25, 0.5, 0.75, 1};
    std::vector<EditKind> kinds = {EditKind::remove, EditKind::replace, EditKind::truncate};
    int trials = 2;  // even: each pair of trials runs the cells forward then backward (see schedule)

    // The points of one trial, contexts interleaved: (hit at each context), then for each kind and
    // position the edit at each context. Misuse (a position that does not resolve to its own
    // exchange, a kind `none` in `kinds`, ...) throws with the fix.
    std::vector<SweepPoint> points() const {
        shape.validate();
        if (context_tokens.empty() || positions.empty() || kinds.empty() || trials < 1)
            throw std::invalid_argument("sweep: needs at least one context length, position, edit kind and trial");
        std::vector<SweepPoint> out;
        for (int ctx : context_tokens) out.push_back({ctx, shape.exchanges_for(ctx), 0, {EditKind::none, 0}});
        for (EditKind kind : kinds) {
            if (kind == EditKind::none)
                throw std::invalid_argument("sweep: kind 'none' is the full hit, always included; list only edits");
            for (double f : positions) {
                if (!(f >= 0 && f <= 1))
                    throw std::invalid_argument("sweep: position " + std::to_string(f) +
                                                " is outside [0, 1] (0 = first exchange, 1 = last)");
                for (int ctx : context_tokens) {
                    const int n = shape.exchanges_for(ctx);
                    out.push_back({ctx, n, f, {kind, static_cast<int>(std::lround(f * (n - 1)))}});
                }
            }
        }
        for (std::size_t i = 0; i < out.size(); ++i)
            for (std::size_t j = 0; j < i; ++j)
                if (out[i].context_tokens == out[j].context_tokens && out[i].edit.kind == out[j].edit.kind &&
                    out[i].edit.exchange == out[j].edit.exchange && out[i].edit.kind != EditKind::none)
                    throw std::invalid_argument(
                        "sweep: positions " + std::to_string(out[j].position) + " and " + std::to_string(out[i].position) +
                        " both edit exchange " + std::to_string(out[i].edit.exchange) + " of the " +
                        std::to_string(out[i].exchanges) + "-exchange conversation at " +
                        std::to_string(out[i].context_tokens) + " tokens; use fewer positions, a longer context, or smaller turns");
        return out;
    }
};

struct ScheduledCell {
    int trial = 0;
    int slot = 0;            // order within the trial
    std::size_t point = 0;   // index into SweepSpec::points()
    std::uint64_t draw = 0;  // content draw, unique per (trial, point): fresh content for every cell
};

// The run order: every point once per trial. Trials come in pairs: the first runs a rotation of the
// points, the second the same rotation backwards, so within each pair every point's mean slot is
// the middle and a linear drift over the pair weighs on every point alike (Experiment 1's ABBA,
// generalised). Successive pairs rotate by a further share of the points, so no point always
// follows the same one. An odd last trial is unpaired: its drift is not balanced.
inline std::vector<ScheduledCell> schedule(const SweepSpec& spec) {
    const std::size_t n = spec.points().size();
    const int pairs = (spec.trials + 1) / 2;
    std::vector<ScheduledCell> out;
    for (int t = 0; t < spec.trials; ++t) {
        const std::size_t shift = static_cast<std::size_t>(t / 2) * n / static_cast<std::size_t>(pairs);
        for (std::size_t s = 0; s < n; ++s) {
            const std::size_t in_rotation = t % 2 == 0 ? s : n - 1 - s;
            const std::size_t point = (in_rotation + shift) % n;
            out.push_back({t, static_cast<int>(s), point, static_cast<std::uint64_t>(t) * n + point});
        }
    }
    return out;
}

// What the sweep should cost in wall time, from an engine's prefill cost line (two points of
// Experiment 1 give it: TTFT of its hit and miss against their recomputed tokens).
struct SweepCostModel {
    double fixed_ms = 0;          // per request, whatever its size
    double ms_per_token = 0;      // per recomputed prompt token
    double settle_ms = 500;       // pause between warm and measured request
    double after_first_ms = 0;    // per measured request: decoding after its first token (0 for 1 token)
    int block_size = 128;         // vLLM's CPU default
};

// Each cell: warm (all fresh content: the whole conversation is prefilled) + settle + measured
// (its nominal recompute), sizes taken as the shape's nominal token counts.
inline double estimated_sweep_seconds(const SweepSpec& spec, const SweepCostModel& cost) {
    const auto& sh = spec.shape;
    double ms = 0;
    for (const auto& p : spec.points()) {
        const int warm = sh.system_tokens + p.exchanges * sh.exchange_tokens();
        const int edited = p.edit.kind == EditKind::remove     ? warm - sh.exchange_tokens()
                           : p.edit.kind == EditKind::truncate ? warm - (p.edit.exchange + 1) * sh.exchange_tokens()
                                                               : warm;
        const int shared = p.edit.kind == EditKind::none       ? warm
                           : p.edit.kind == EditKind::truncate ? sh.system_tokens
                                                               : sh.system_tokens + p.edit.exchange * sh.exchange_tokens();
        const auto r = predict_reuse(shared, edited + sh.query_tokens, cost.block_size);
        ms += cost.fixed_ms + cost.ms_per_token * warm + cost.settle_ms + cost.fixed_ms +
              cost.ms_per_token * r.recompute_tokens + cost.after_first_ms;
    }
    return ms * spec.trials / 1000;
}

}  // namespace kvgate
