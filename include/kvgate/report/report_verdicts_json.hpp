// verdicts.json: every verdict in a report directory in one small machine-readable file, for a CI step
// that annotates a merge request or feeds a dashboard without reading each experiment's results schema:
// the overall outcome, then per results file its outcome, reason, fix and the metrics (with the
// intervals they were decided on) that the report model carries. A report format over the model only.
#pragma once

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvgate/model/records.hpp"
#include "kvgate/model/report_files.hpp"
#include "kvgate/report/report_model.hpp"

namespace kvgate {

inline constexpr const char* verdicts_file_name = "verdicts.json";
inline constexpr int verdicts_schema_version = 1;

namespace report_detail {

inline nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

inline nlohmann::json verdicts_json(const std::vector<ExperimentReport>& reports) {
    std::vector<ResultLine> all;
    nlohmann::json results = nlohmann::json::array();
    for (const auto& r : reports)
        for (const auto& line : r.results) {
            all.push_back(line);
            nlohmann::json metrics = nlohmann::json::array();
            for (const auto& m : line.metrics)
                metrics.push_back({{"name", m.name},
                                   {"estimate", number_or_null(m.estimate)},
                                   {"low", number_or_null(m.low)},
                                   {"high", number_or_null(m.high)},
                                   {"unit", m.unit}});
            results.push_back({{"experiment", r.experiment},
                               {"title", line.title},
                               {"results_file", line.results_file},
                               {"outcome", to_string(line.outcome)},
                               {"complete", line.complete},
                               {"reason", line.reason},
                               {"fix", line.fix},
                               {"metrics", metrics}});
        }
    return {{"schema_version", verdicts_schema_version},
            {"outcome", to_string(overall_outcome(all))},
            {"results", results}};
}

inline void render_verdicts_json(const std::vector<ExperimentReport>& reports, const std::filesystem::path& out_dir,
                                 StagedFiles& staged) {
    staged.write(out_dir / verdicts_file_name,
                 verdicts_json(reports).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

}  // namespace report_detail
}  // namespace kvgate
