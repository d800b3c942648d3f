// The verdict's engine-specific words, found by engine kind: each engine's advice() lives in its
// dialect header. A kind without a case gets the verdict's engine-neutral words.
#pragma once

#include "kvgate/engine/dialect.hpp"
#include "kvgate/engine/llamacpp.hpp"
#include "kvgate/engine/vllm.hpp"
#include "kvgate/model/experiment.hpp"

namespace kvgate {

inline EngineAdvice engine_advice(EngineKind kind) {
    switch (kind) {
        case EngineKind::vllm_http:
        case EngineKind::vllm_python:
        case EngineKind::vllm_fleet: return vllm::advice();
        case EngineKind::llamacpp_http: return llamacpp::advice();
        default: return {};
    }
}

}  // namespace kvgate
