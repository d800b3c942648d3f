// A fleet's placement figure: per trial, the replica that served the warm-up [A,B] and the one that
// served the query. A hit-arm query away from its warm-up is marked: that hit could not be served
// from the warmed cache. Drawn for every phase that ran through a router (EngineInfo::fleet()).
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "kvgate/experiment/verdict.hpp"
#include "kvgate/model/experiment.hpp"
#include "kvgate/model/records.hpp"
#include "kvgate/report/report_plot.hpp"

namespace kvgate {

inline std::string placement_figure_name(const Experiment& e) { return e.id + "_placement"; }

// Whether an experiment can have fleet phases, so its reports include the placement figure.
inline bool has_fleet_phase(const Experiment& e) {
    for (const auto& p : e.phases)
        if (p.engine == EngineKind::vllm_fleet) return true;
    return false;
}

namespace report_detail {

inline int placed_replica(const std::optional<Placement>& p) { return p && p->placed() ? p->replica : -1; }

inline int fleet_size(const std::vector<PhaseResult>& phases) {
    std::size_t n = 0;
    for (const auto& r : phases) n = std::max(n, r.engine.replica_urls.size());
    return static_cast<int>(n);
}

}  // namespace report_detail

// Per fleet phase with label L, block [L-placement]: one row per trial (warm-ups included).
inline std::string placement_data(const Experiment& experiment, const std::vector<PhaseResult>& phases) {
    std::ostringstream out;
    out << "# kvgate data for " << placement_figure_name(experiment) << ".gp. Replica index; -1: not placed.\n"
        << "# Columns: trial warm_replica query_replica arm(0=hit,1=miss,2=cold) warmup(0/1) moved(1: hit-arm query away "
           "from its warm-up)\n";
    for (const auto& r : phases) {
        if (!r.engine.fleet()) continue;
        out << "\n\n# [" << r.phase.label << "-placement] " << r.phase.title << "\n";
        for (const auto& t : r.trials) {
            const int warm = report_detail::placed_replica(t.warm.placement);
            const int query = report_detail::placed_replica(t.measured.placement);
            const bool moved = t.arm == Arm::hit && warm >= 0 && query >= 0 && warm != query;
            out << t.number() << " " << warm << " " << query << " " << report_detail::arm_x(t.arm) << " "
                << (t.warmup ? 1 : 0) << " " << (moved ? 1 : 0) << "\n";
        }
    }
    return out.str();
}

inline std::string placement_script(const Experiment& experiment, const std::vector<PhaseResult>& phases) {
    using namespace report_detail;
    const std::string name = placement_figure_name(experiment);
    std::vector<const PhaseResult*> fleet;
    for (const auto& r : phases)
        if (r.engine.fleet()) fleet.push_back(&r);
    const int replicas = fleet_size(phases);
    const int rows = std::max<int>(1, static_cast<int>(fleet.size()));
    std::ostringstream s;
    s << script_preamble(name, "placement per trial: warm-up replica vs query replica", 1200, 160 + 400 * rows)
      << "set offsets 0.5, 0.5, 0, 0\n"
      << "set grid xtics ytics lc rgb \"#dddddd\"\n"
      << "set yrange [-1.6:" << replicas - 0.4 << "]\n"
      << "set ytics (\"not placed\" -1";
    for (int i = 0; i < replicas; ++i) s << ", " << gp_quote("replica " + std::to_string(i)) << " " << i;
    s << ")\n"
      << "set xlabel \"trial (run order; shaded: warm-up trials, not counted)\"\n"
      << "set multiplot layout " << rows << ",1 title "
      << gp_quote(experiment.title + "\nwhere each trial's warm-up [A,B] and query went (read from each replica's "
                                     "prefix-cache counters)")
      << " font \",13\"\n";
    if (fleet.empty()) s << "set label 1 \"no fleet results\" at graph 0.5, graph 0.5 center\nplot NaN notitle\n";
    for (const PhaseResult* r : fleet) {
        const std::string block = "[" + r->phase.label + "-placement]";
        const auto summary = fleet_placement(*r);
        int warmups = 0;
        for (const auto& t : r->trials) warmups += t.warmup ? 1 : 0;
        s << "\n# " << r->phase.title << "\n"
          << "set title " << gp_quote(r->phase.title + " \u00b7 " + router_policy_name(r->engine) + " \u00b7 " +
                                      to_string(r->verdict.outcome) + "\n" + (summary ? summary->message() : "") + "\n" +
                                      (summary ? summary->reuse_line() : ""))
          << "\n";
        if (warmups > 0)
            s << "set object 1 rect from " << 0.5 << ", graph 0 to " << warmups + 0.5
              << ", graph 1 back fc rgb \"#eeeeee\" fs solid 1.0 noborder\n";
        s << "plot datafile index " << gp_quote(block)
          << " using 1:2 with points pt 4 ps 2.6 lw 2 lc rgb \"#555555\" title \"warm-up [A,B]\", \\\n"
          << "     '' index " << gp_quote(block) << " using 1:($4==0 ? $3 : NaN) with points pt 7 ps 1.5 lc rgb "
          << gp_quote(hit_colour) << " title \"query, cache-hit arm [A,B,Q]\", \\\n"
          << "     '' index " << gp_quote(block) << " using 1:($4==1 ? $3 : NaN) with points pt 9 ps 1.5 lc rgb "
          << gp_quote(miss_colour) << " title \"query, cache-miss arm [B,Q]\", \\\n";
        if (has_cold_arm(*r))
            s << "     '' index " << gp_quote(block) << " using 1:($4==2 ? $3 : NaN) with points pt 5 ps 1.3 lc rgb "
              << gp_quote(cold_colour) << " title " << gp_quote("query, cache-cold arm [A',B,Q]") << ", \\\n";
        s
          << "     '' index " << gp_quote(block)
          << " using 1:($6==1 ? $3 : NaN) with points pt 2 ps 3.2 lw 3 lc rgb \"#CC0000\" "
             "title \"hit-arm query on another replica than its warm-up\"\n"
          << "unset object 1\n";
    }
    s << "unset multiplot\nunset output\n";
    return s.str();
}

inline Figure placement_figure(const Experiment& e, const std::vector<PhaseResult>& phases) {
    return {placement_figure_name(e), placement_data(e, phases), placement_script(e, phases)};
}

}  // namespace kvgate
