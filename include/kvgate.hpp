// kvgate: prefix-cache invalidation cost as TTFT, hit vs miss, turned into a CI verdict.
// The pipeline, in the order data flows through it. Everything: link kvgate::kvgate. Smaller
// pieces: kvgate::core (no Python, no HTTP), kvgate::http, kvgate::python, kvgate::report.
#pragma once

#include "kvgate/experiment.hpp"
#include "kvgate/settings.hpp"
#include "kvgate/records.hpp"
#include "kvgate/sse.hpp"
#include "kvgate/prompt.hpp"
#include "kvgate/engine.hpp"
#include "kvgate/dialect.hpp"
#include "kvgate/vllm.hpp"
#include "kvgate/llamacpp.hpp"
#include "kvgate/http_engine.hpp"
#include "kvgate/fleet_engine.hpp"
#include "kvgate/python_engine.hpp"
#include "kvgate/engines.hpp"
#include "kvgate/evidence.hpp"
#include "kvgate/stats.hpp"
#include "kvgate/verdict.hpp"
#include "kvgate/protocol.hpp"
#include "kvgate/report_files.hpp"
#include "kvgate/results_json.hpp"
#include "kvgate/report_labels.hpp"
#include "kvgate/report_plot.hpp"
#include "kvgate/report_markdown.hpp"
#include "kvgate/report_fleet.hpp"
#include "kvgate/report.hpp"
