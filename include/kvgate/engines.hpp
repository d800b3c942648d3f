// The one place that turns settings into an engine: the CLI and the gpu tests both build theirs here.
// A new engine kind adds its value in experiment.hpp and one case below.
#pragma once

#include <memory>
#include <stdexcept>

#include "kvgate/engine/engine.hpp"
#include "kvgate/engine/llamacpp.hpp"
#include "kvgate/engine/vllm.hpp"
#include "kvgate/http/fleet_engine.hpp"
#include "kvgate/http/http_engine.hpp"
#include "kvgate/model/experiment.hpp"
#include "kvgate/model/settings.hpp"
#include "kvgate/python/python_engine.hpp"

namespace kvgate {

inline std::unique_ptr<Engine> make_engine(const Settings& s) {
    // Each engine gets the target and its own options, nothing else of the settings.
    switch (s.engine) {
        case EngineKind::vllm_http: return std::make_unique<HttpEngine>(s.target, std::make_unique<vllm::Dialect>());
        case EngineKind::vllm_python: return std::make_unique<PythonEngine>(s.target, s.python, s.prefix_caching);
        case EngineKind::llamacpp_http:
            return std::make_unique<HttpEngine>(
                s.target, std::make_unique<llamacpp::Dialect>(s.prefix_caching, s.llamacpp.cache_reuse));
        case EngineKind::vllm_fleet: return std::make_unique<FleetEngine>(s.target, s.fleet);
    }
    throw std::logic_error(std::string("make_engine: no case for engine kind ") + to_string(s.engine));
}

}  // namespace kvgate
