// Names and numbers for people, shared by the figures and the summary.
#pragma once

#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "kvgate/model/records.hpp"

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

// A confidence as people write it: 0.95 -> "95%", 0.975 -> "97.5%", 0.99917 -> "99.92%".
inline std::string confidence_pct(double fraction) {
    if (!std::isfinite(fraction)) return "n/a";
    std::string out = format_fixed(fraction * 100, 2);
    while (out.back() == '0') out.pop_back();
    if (out.back() == '.') out.pop_back();
    return out + "%";
}

// Breaks `text` at spaces into lines of at most `width` bytes where it can (a longer word keeps its line).
inline std::string wrapped(const std::string& text, std::size_t width) {
    std::string out, line;
    std::size_t from = 0;
    while (from <= text.size()) {
        std::size_t to = text.find(' ', from);
        if (to == std::string::npos) to = text.size();
        const std::string word = text.substr(from, to - from);
        if (!line.empty() && line.size() + 1 + word.size() > width) {
            out += (out.empty() ? "" : "\n") + line;
            line.clear();
        }
        line += (line.empty() ? "" : " ") + word;
        from = to + 1;
    }
    return out + (out.empty() ? "" : "\n") + line;
}

// Whether a result has the cold arm: files written before it have neither its trials nor its statistics.
inline bool has_cold_arm(const PhaseResult& r) {
    if (r.cold_stats.n > 0) return true;
    for (const Trial& t : r.trials)
        if (t.arm == Arm::cold) return true;
    return false;
}

// The arms a report shows for `r`, in their figure order: hit, miss, and cold where it was measured.
inline std::vector<Arm> shown_arms(const PhaseResult& r) {
    if (has_cold_arm(r)) return {Arm::hit, Arm::miss, Arm::cold};
    return {Arm::hit, Arm::miss};
}

// The condition an arm measures, for axis labels and table heads.
inline std::string arm_condition(Arm arm) {
    switch (arm) {
        case Arm::hit: return "cache hit [A,B,Q]";
        case Arm::miss: return "cache miss [B,Q]";
        case Arm::cold: return "cache cold [A',B,Q]";
    }
    return "";
}

// One contrast of the verdict as a report shows it, read from the result as the verdict recorded it.
struct ShownContrast {
    bool shown = false;  // a ratio to draw; false: no such contrast in this result (see `absent`)
    double ratio = 0, low = 0, high = 0;
    int pairs = 0;                   // 0: not recorded (a file from before the contrasts)
    double look_confidence = 0;      // the interval's confidence at the look that decided
    std::optional<Outcome> outcome;  // the contrast's own outcome; none: not recorded
    std::string absent;              // why nothing is shown
    bool interval() const { return std::isfinite(low) && std::isfinite(high); }
};

inline ShownContrast shown_contrast(const Contrast& c) {
    ShownContrast s;
    if (c.pairs <= 0 || !std::isfinite(c.ratio) || c.ratio <= 0) {
        s.absent = "no paired rounds";
        return s;
    }
    s.shown = true;
    s.ratio = c.ratio;
    s.low = c.low;
    s.high = c.high;
    s.pairs = c.pairs;
    s.look_confidence = c.look_confidence;
    s.outcome = c.outcome;
    return s;
}

// cold/hit: the cache's own saving at equal length.
inline ShownContrast cache_contrast(const PhaseResult& r) {
    if (!has_cold_arm(r)) {
        ShownContrast s;
        s.absent = "no cold arm in this result";
        return s;
    }
    return shown_contrast(r.verdict.cache);
}

// miss/hit: the seed's test. A file from before the contrasts has only the seed's ratio and interval,
// at the verdict's confidence.
inline ShownContrast invalidation_contrast(const PhaseResult& r) {
    const Verdict& v = r.verdict;
    if (v.invalidation.pairs > 0) return shown_contrast(v.invalidation);
    ShownContrast s;
    if (!std::isfinite(v.ratio) || v.ratio <= 0) {
        s.absent = "no paired rounds";
        return s;
    }
    s.shown = true;
    s.ratio = v.ratio;
    s.low = v.ratio_low;
    s.high = v.ratio_high;
    s.look_confidence = v.confidence;
    return s;
}

// What an outcome means for one contrast against the bar.
inline std::string contrast_outcome_words(Outcome o) {
    switch (o) {
        case Outcome::pass: return "clears the bar";
        case Outcome::fail: return "below the bar";
        case Outcome::indeterminate: return "straddles the bar";
        case Outcome::error: return "too few pairs to decide";
        case Outcome::unverified: return "unverified";
    }
    return "";
}

inline std::string upper(std::string s) {
    for (char& c : s)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return s;
}

}  // namespace report_detail

inline std::string engine_title(const EngineInfo& e) {
    return (e.name.empty() ? std::string("engine") : e.name) + " " +
           (e.version.empty() ? std::string("(version unknown)") : e.version);
}

}  // namespace kvgate
