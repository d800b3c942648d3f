// What a phase needs of an engine, whichever it is (HTTP server or in-process LLM):
// run one completion and say when its moments fell, count tokens, read the cache counters.
// The contract, the same for every engine: misuse (bad settings, a missing venv) throws from the
// constructor; after that nothing throws. A failed completion is a Fault value; what describe(),
// count_tokens() and prefix_cache_counters() cannot find out stays unknown (empty, nullopt,
// available = false), so a finished run is never lost to them.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvgate/engine/reuse.hpp"
#include "kvgate/model/message.hpp"
#include "kvgate/model/records.hpp"

namespace kvgate {

// Cumulative prefix-cache counters at one moment; phases take deltas around a run.
struct CounterSnapshot {
    bool available = false;
    double queries = 0;
    double hits = 0;
    std::vector<CounterSnapshot> parts{};  // a fleet: each replica's, in replica order (the fields above sum them)
};

// One request's outcome: what was recorded, and a fault when it did not complete.
// The engine names the kind, stage and message; the protocol adds trial and request.
struct Completion {
    RequestRecord record;
    std::optional<Fault> fault;
    Clock::time_point sent{};  // the stamps' origin, to set them against another clock's reading
};

class Engine {
public:
    virtual ~Engine() = default;
    // How many tokens a measured request will generate when `requested` are asked for; an engine
    // that can only time fewer (in-process: 1) says so, and the run records what it measured.
    virtual int output_tokens(int requested) const { return requested; }
    // Engine name, version, block size, prefix caching on/off, endpoint; asked once per run.
    virtual EngineInfo describe() = 0;
    // The prompt's length in the model's tokens as the engine will see it; nullopt if it cannot say.
    virtual std::optional<int> count_tokens(const std::string& prompt) = 0;
    // The prompt's token ids as the engine renders it (chat template applied); nullopt if it
    // cannot say. The protocol renders two prompts to find what the template adds around them.
    virtual std::optional<TokenIds> token_ids(const std::string&) { return std::nullopt; }
    // The most tokens one request may hold, prompt and output together; nullopt if it cannot say.
    // The protocol checks its largest request against it before anything is timed.
    virtual std::optional<int> context_tokens() { return std::nullopt; }
    // Text for ids, to name where two renderings diverge; nullopt where the engine cannot say.
    virtual std::optional<std::string> detokenize(const std::vector<int>&) { return std::nullopt; }
    // Generates max_tokens tokens (EOS ignored where the engine allows) for the prompt.
    virtual Completion complete(const std::string& prompt, int max_tokens) = 0;
    virtual CounterSnapshot prefix_cache_counters() = 0;

    // A conversation sent as separate chat messages, so the engine's chat template applies between
    // turns (Experiment 2). An engine that cannot send messages keeps these defaults; calling
    // complete_messages() where takes_messages() is false is misuse.
    virtual bool takes_messages() const { return false; }
    // Token ids of `messages` as the chat template renders them: with the reply's header appended
    // (add_generation_prompt = true, what a request sends) or ending where a next message would
    // start (false); nullopt if the engine cannot say.
    virtual std::optional<std::vector<int>> message_token_ids(const std::vector<Message>& /*messages*/,
                                                              bool /*add_generation_prompt*/) {
        return std::nullopt;
    }
    virtual Completion complete_messages(const std::vector<Message>& /*messages*/, int /*max_tokens*/) {
        throw std::logic_error(describe().name + " engine: takes no chat messages (takes_messages() is false); "
                               "Experiment 2 needs a chat endpoint (--engine vllm_http --endpoint chat)");
    }
};

}  // namespace kvgate
