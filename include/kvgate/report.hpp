// `kvgate report`: results_phase1.json / results_phase2.json in, the seed's two figures (with their
// gnuplot scripts and data) and summary.md out. Every input is read and validated, and every output
// drawn, before any output replaces an existing file.
#pragma once

#include <array>
#include <filesystem>
#include <string>
#include <vector>

#include "kvgate/records.hpp"
#include "kvgate/report_json.hpp"
#include "kvgate/report_markdown.hpp"
#include "kvgate/report_plot.hpp"

namespace kvgate {

inline constexpr std::array<const char*, 2> results_file_names = {"results_phase1.json", "results_phase2.json"};
inline constexpr const char* summary_file_name = "summary.md";

inline void write_reports(const std::filesystem::path& in_dir, const std::filesystem::path& out_dir) {
    std::vector<PhaseResult> phases;
    for (const char* name : results_file_names) {
        std::filesystem::path file = in_dir / name;
        std::error_code ec;
        // A file that is there but unreadable is read anyway, so its error is reported.
        if (std::filesystem::exists(file, ec) || ec) phases.push_back(read_results_file(file));
    }
    if (phases.empty())
        throw ReportError(in_dir.string() + ": neither " + results_file_names[0] + " nor " + results_file_names[1] +
                          " is here — run phase 1 and/or phase 2 first, or point the report at their directory");

    const std::vector<Figure> figures = {results_figure(phases), phase_comparison_figure(phases)};
    std::vector<std::string> images;
    for (const auto& f : figures) images.push_back(f.name + ".png");
    const std::string summary = summary_markdown(phases, images);

    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) throw ReportError(out_dir.string() + ": cannot create the report directory: " + ec.message());
    StagedFiles staged;
    for (const auto& f : figures) stage_figure(f, out_dir, staged);
    staged.write(out_dir / summary_file_name, summary);
    staged.commit();
}

}  // namespace kvgate
