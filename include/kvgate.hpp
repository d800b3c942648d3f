// kvgate: prefix-cache invalidation cost as TTFT, hit vs miss, turned into a CI verdict.
// The pipeline, in the order data flows through it.
#pragma once

#include "kvgate/settings.hpp"
#include "kvgate/records.hpp"
#include "kvgate/sse.hpp"
#include "kvgate/prompt.hpp"
#include "kvgate/engine.hpp"
#include "kvgate/http_engine.hpp"
#include "kvgate/python_engine.hpp"
#include "kvgate/evidence.hpp"
#include "kvgate/stats.hpp"
#include "kvgate/verdict.hpp"
#include "kvgate/protocol.hpp"
#include "kvgate/report_json.hpp"
#include "kvgate/report_plot.hpp"
#include "kvgate/report_markdown.hpp"
#include "kvgate/report.hpp"
