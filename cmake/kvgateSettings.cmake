# kvgate's settings as CMake cache variables: each one left empty keeps the built-in default, and
# each one set reaches the tests as the environment variable of the same name (settings.hpp holds
# the table with defaults and CLI flags; a unit test checks that this list matches it).
set(KVGATE_SETTING_NAMES
  KVGATE_ENGINE KVGATE_URL KVGATE_MODEL KVGATE_API_KEY_ENV KVGATE_ENDPOINT KVGATE_TRIALS KVGATE_WARMUP
  KVGATE_SETTLE_MS KVGATE_CONTEXT_A_TOKENS KVGATE_CONTEXT_B_TOKENS KVGATE_QUERY_TOKENS
  KVGATE_MAX_OUTPUT_TOKENS KVGATE_THRESHOLD_PCT KVGATE_CONFIDENCE KVGATE_CONNECT_TIMEOUT_S
  KVGATE_READ_TIMEOUT_S KVGATE_SEED KVGATE_OUT KVGATE_VENV KVGATE_DTYPE KVGATE_DUMMY_WEIGHTS
  KVGATE_PREFIX_CACHING KVGATE_LLAMACPP_CACHE_REUSE
  KVGATE_CURVE_CONTEXTS KVGATE_CURVE_POSITIONS KVGATE_CURVE_TRIALS)

set(KVGATE_TEST_ENVIRONMENT "")
foreach(name IN LISTS KVGATE_SETTING_NAMES)
  set(${name} "" CACHE STRING "kvgate setting (empty: built-in default; see README)")
  if(NOT "${${name}}" STREQUAL "")
    list(APPEND KVGATE_TEST_ENVIRONMENT "${name}=${${name}}")
  endif()
endforeach()
