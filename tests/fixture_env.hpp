// Which engine a gpu test talks to: the engine.env a fixture wrote, over the environment's settings.
// Apart from gpu_support.hpp (which needs the whole of kvgate) so that a unit test can check it.
#pragma once

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "kvgate/model/settings.hpp"

namespace kvgate::testing {

// The engine.env a fixture wrote (engine.sh: KEY=value lines, values shell-quoted without spaces).
inline std::map<std::string, std::string> read_engine_env_file(const std::string& path) {
    std::map<std::string, std::string> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);)
        if (auto eq = line.find('='); eq != std::string::npos) {
            std::string value = line.substr(eq + 1);
            std::string unquoted;
            for (std::size_t i = 0; i < value.size(); ++i) {  // printf %q escapes with backslashes
                if (value[i] == '\\' && i + 1 < value.size()) ++i;
                unquoted += value[i];
            }
            out[line.substr(0, eq)] = unquoted;
        }
    return out;
}

// The one fixture `fixture` (apc, nocache...) wrote under KVGATE_ENGINE_STATE.
inline std::map<std::string, std::string> read_engine_env(const std::string& fixture) {
    const char* state = std::getenv("KVGATE_ENGINE_STATE");
    return read_engine_env_file(std::string(state ? state : "") + "/" + fixture + "/engine.env");
}

// The fixture's engine, where it started one, wins over the environment: the negative control's
// local no-cache engine serves its own model name even where KVGATE_URL and KVGATE_MODEL name
// another server (with that server's name the local engine answers 404).
inline Settings with_fixture_engine(Settings s, const std::map<std::string, std::string>& engine_env) {
    if (auto url = engine_env.find("KVGATE_URL"); url != engine_env.end() && !url->second.empty())
        s.target.url = checked_url(url->second);
    if (auto model = engine_env.find("KVGATE_MODEL"); model != engine_env.end() && !model->second.empty())
        s.target.model = model->second;
    // llama.cpp's cache switches are request fields: the client must send what the fixture's server was
    // started for (its no-cache variant only changes the server's default).
    if (auto cache = engine_env.find("KVGATE_LLAMACPP_CACHE_PROMPT"); cache != engine_env.end())
        s.prefix_caching = cache->second != "0";
    if (auto reuse = engine_env.find("KVGATE_LLAMACPP_CACHE_REUSE"); reuse != engine_env.end() && !reuse->second.empty())
        s.llamacpp.cache_reuse = static_cast<int>(detail::parse_int("KVGATE_LLAMACPP_CACHE_REUSE", reuse->second, 0, 1 << 20));
    return s;
}

}  // namespace kvgate::testing
