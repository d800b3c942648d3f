// Names and numbers for people, shared by the figures and the summary.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

#include "kvgate/records.hpp"

namespace kvgate {

namespace report_detail {

inline std::string format_fixed(double v, int decimals) {
    if (!std::isfinite(v)) return "n/a";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

inline std::string signed_pct(double v) {
    return std::isfinite(v) ? (v >= 0 ? "+" : "") + format_fixed(v, 1) + "%" : "n/a";
}

}  // namespace report_detail

inline std::string engine_title(const EngineInfo& e) {
    return (e.name.empty() ? std::string("engine") : e.name) + " " +
           (e.version.empty() ? std::string("(version unknown)") : e.version);
}

}  // namespace kvgate
