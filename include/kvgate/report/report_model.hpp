// The report model: what an experiment hands the reporters, and all they read. An experiment turns
// its results files into one ExperimentReport (a headline per results file with its verdict and the
// metrics it rests on, figure specs, its summary section); each report format (report.hpp's
// reporters) renders the models of every experiment in a directory, with no analysis of its own.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "kvgate/model/records.hpp"

namespace kvgate {

// A measured quantity, with the interval it was decided on (NaN bounds: none).
struct Metric {
    std::string name;  // e.g. "cold/hit TTFT ratio"
    double estimate = std::numeric_limits<double>::quiet_NaN();
    double low = std::numeric_limits<double>::quiet_NaN();
    double high = std::numeric_limits<double>::quiet_NaN();
    std::string unit;  // "" for a ratio
};

// What gnuplot needs to draw one figure.
struct Figure {
    std::string name;    // file stem: <name>.dat, <name>.gp, <name>.png
    std::string data;    // text of <name>.dat
    std::string script;  // text of <name>.gp; reads <name>.dat, writes <name>.png
};

// One results file's headline: its verdict in the shared vocabulary, and what it rests on.
struct ResultLine {
    std::string title;         // the phase's (or sweep's) title
    std::string results_file;  // its file in the directory
    Outcome outcome = Outcome::error;
    bool complete = false;
    std::string reason, fix;
    std::vector<Metric> metrics;
};

// One experiment's part of a directory's report.
struct ExperimentReport {
    std::string experiment;           // its id
    std::vector<Figure> figures;
    std::string markdown;             // its sections of summary.md
    std::vector<ResultLine> results;  // one per results file
};

namespace report_detail {

// How bad an outcome is for the directory's overall one: a result that decided nothing (error) is
// worst, then a regression shown (fail), then a measurement that cannot be trusted, then no decision.
inline int severity(Outcome o) {
    switch (o) {
        case Outcome::pass: return 0;
        case Outcome::indeterminate: return 1;
        case Outcome::unverified: return 2;
        case Outcome::fail: return 3;
        case Outcome::error: return 4;
    }
    return 4;
}

}  // namespace report_detail

// The worst outcome of `results` (see report_detail::severity); error for none.
inline Outcome overall_outcome(const std::vector<ResultLine>& results) {
    if (results.empty()) return Outcome::error;
    Outcome worst = Outcome::pass;
    for (const auto& r : results)
        if (report_detail::severity(r.outcome) > report_detail::severity(worst)) worst = r.outcome;
    return worst;
}

}  // namespace kvgate
