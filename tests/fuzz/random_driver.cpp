// The SSE fuzz check without libFuzzer (any compiler; built with ASan + UBSan): replays the given
// files, then checks random cases until a time or input budget is spent.
//   kvgate_sse_fuzz_driver [--seconds S] [--inputs N] [--seed X] [PATH...]
// A PATH is a file or a directory of files. A *.sse file is a plain stream, checked in one read,
// one byte per read and random reads under both statuses, and used as material for random cases;
// any other file is a libFuzzer input (a crash or corpus file), checked as libFuzzer would.
// A random case is a mutated seed or a stream put together from SSE and JSON pieces, cut at
// random points. A mismatch prints the case and aborts.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "sse_check.hpp"

namespace {

namespace fs = std::filesystem;
using kvgate::fuzz::Case;

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Pieces that streams from vLLM, llama.cpp and broken servers are made of.
const std::vector<std::string> kPieces = {
    "data: ", "data:", "data", "event: ", "event:error", "id: ", "id", "retry: 3000", ":", ": keep-alive",
    ": ping - 2026-11-29 10:00:00", "\n", "\r", "\r\n", "\n\n", "\r\n\r\n", "\r\r", "\xEF\xBB\xBF", "\xEF\xBB",
    std::string("\0", 1), "[DONE]", "data: [DONE]\n\n", " ", "é", "日本", "\xFF\xFE", "\xC3",
    R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})",
    R"({"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]})",
    R"({"choices":[{"index":0,"delta":{"content":"Hi"}}]})",
    R"({"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]})",
    R"({"choices":[{"index":0,"delta":{"reasoning":"hmm"}}]})",
    R"({"choices":[{"index":0,"text":" the"}]})",
    R"({"choices":[{"index":0,"delta":{},"finish_reason":"length"}]})",
    R"({"choices":[],"usage":{"prompt_tokens":812,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":768}}})",
    R"({"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"time_to_first_token_ms":41.25}})",
    R"({"choices":[],"usage":{"prompt_tokens":2147483648,"completion_tokens":-1,"time_to_first_token_ms":1e400}})",
    R"({"choices":[],"usage":{"completion_tokens":3,"prompt_tokens":807},"timings":{"cache_n":773,"prompt_n":34}})",
    R"({"error":{"object":"error","message":"CUDA out of memory","type":"InternalServerError","code":500}})",
    R"({"error":{"code":500,"message":"the request exceeds the available context size"}})",
    R"({"error":"plain"})", R"({"detail":[{"loc":["body"]}]})", R"({"choices":null})", R"({"choices":[null,1,"x"]})",
    R"({"usage":null})", R"({"usage":{"prompt_tokens_details":[]}})", "{", "}", "[", "]", "\"", ",", "null", "1e400",
    "18446744073709551615", "-9223372036854775809", "\\u0000", "\\ud800",
};

class Generator {
public:
    Generator(std::uint64_t seed, std::vector<std::string> seeds) : rng_(seed), seeds_(std::move(seeds)) {}

    std::string stream() {
        std::string s = (!seeds_.empty() && coin(2)) ? seeds_[below(seeds_.size())] : std::string();
        if (s.empty() || coin(4)) {  // a stream built from pieces
            for (std::size_t n = below(40); n > 0; --n) s += piece();
        }
        for (std::size_t n = below(8); n > 0; --n) mutate(s);
        if (s.size() > 8192) s.resize(8192);
        return s;
    }

    std::vector<std::size_t> reads(std::size_t size) {
        std::vector<std::size_t> ends;
        switch (below(4)) {
            case 0: break;                                   // one read
            case 1:                                          // short reads, some empty
                for (std::size_t at = 0; at < size;) ends.push_back(at += below(8));
                break;
            default:                                         // a few cuts anywhere
                for (std::size_t n = below(12); n > 0; --n) ends.push_back(below(size + 1));
                std::sort(ends.begin(), ends.end());
        }
        while (!ends.empty() && ends.back() >= size) ends.pop_back();
        ends.push_back(size);
        return ends;
    }

    int status() { return coin(8) ? 500 : 200; }
    std::size_t below(std::size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

private:
    bool coin(std::size_t one_in) { return below(one_in) == 0; }

    std::string piece() {
        if (coin(6)) {  // random bytes
            std::string b;
            for (std::size_t n = 1 + below(8); n > 0; --n) b += static_cast<char>(below(256));
            return b;
        }
        if (coin(3)) return "data: " + kPieces[below(kPieces.size())] + (coin(2) ? "\n\n" : "\r\n\r\n");
        return kPieces[below(kPieces.size())];
    }

    void mutate(std::string& s) {
        const std::size_t at = below(s.size() + 1);
        switch (below(5)) {
            case 0: s.insert(at, piece()); break;
            case 1: s.erase(at, below(16)); break;
            case 2: if (at < s.size()) s[at] = static_cast<char>(below(256)); break;
            case 3: s.insert(at, s.substr(below(s.size() + 1), below(64))); break;  // duplicate a stretch
            default:
                if (!seeds_.empty()) {  // splice in part of another seed
                    const auto& other = seeds_[below(seeds_.size())];
                    s.insert(at, other.substr(below(other.size() + 1), below(256)));
                }
        }
    }

    std::mt19937_64 rng_;
    std::vector<std::string> seeds_;
};

}  // namespace

int main(int argc, char** argv) try {
    double seconds = 0;
    std::uint64_t inputs = 0, seed = std::random_device{}();
    std::vector<fs::path> files;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--seconds") seconds = std::stod(value());
        else if (arg == "--inputs") inputs = std::stoull(value());
        else if (arg == "--seed") seed = std::stoull(value());
        else if (fs::is_directory(arg)) for (const auto& e : fs::directory_iterator(arg)) files.push_back(e.path());
        else if (fs::is_regular_file(arg)) files.push_back(arg);
        else throw std::invalid_argument("'" + arg + "' is no option, file or directory; usage: " + argv[0] +
                                         " [--seconds S] [--inputs N] [--seed X] [PATH...]");
    }
    if (seconds <= 0 && inputs == 0) seconds = 5;
    std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
    std::fflush(stdout);

    std::vector<std::string> seeds;
    std::uint64_t replayed = 0;
    Generator gen(seed, {});
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        const std::string bytes = read_file(f);
        if (f.extension() == ".sse") {
            seeds.push_back(bytes);
            for (int status : {200, 500}) {
                kvgate::fuzz::check(Case{bytes, {bytes.size()}, status});
                for (int n = 0; n < 20; ++n, ++replayed) kvgate::fuzz::check(Case{bytes, gen.reads(bytes.size()), status});
            }
        } else {
            kvgate::fuzz::check(kvgate::fuzz::decode(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
            ++replayed;
        }
    }
    std::printf("replayed %zu files (%llu cases)\n", files.size(), static_cast<unsigned long long>(replayed));

    Generator random(seed, std::move(seeds));
    const auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    std::uint64_t n = 0;
    std::size_t bytes = 0;
    for (; (inputs == 0 || n < inputs) && (seconds <= 0 || (n % 64 != 0 || elapsed() < seconds)); ++n) {
        const std::string s = random.stream();
        bytes += s.size();
        kvgate::fuzz::check(Case{s, random.reads(s.size()), random.status()});
    }
    const double t = elapsed();
    std::printf("%llu random inputs (mean %.0f bytes) in %.1f s (%.0f/s), 0 findings\n",
                static_cast<unsigned long long>(n), n ? double(bytes) / n : 0.0, t, t > 0 ? n / t : 0.0);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "kvgate_sse_fuzz_driver: %s\n", e.what());
    return 2;
}
