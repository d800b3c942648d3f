// The seed's two figures for an experiment's phases, drawn by gnuplot from a script and a data file that stay beside the PNG,
// so `gnuplot <name>.gp` in that directory re-draws it. Script and data text are pure functions;
// only stage_figure()/render_figure() touch the disk or run gnuplot.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnuplot-iostream.h>

#include "kvgate/experiment.hpp"
#include "kvgate/records.hpp"
#include "kvgate/report_files.hpp"
#include "kvgate/report_labels.hpp"

namespace kvgate {

inline std::string results_figure_name(const Experiment& e) { return e.id + "_results"; }
inline std::string phase_comparison_figure_name(const Experiment& e) { return e.id + "_phase_comparison"; }

// What gnuplot needs to draw one figure.
struct Figure {
    std::string name;    // file stem: <name>.dat, <name>.gp, <name>.png
    std::string data;    // text of <name>.dat
    std::string script;  // text of <name>.gp; reads <name>.dat, writes <name>.png
};

namespace report_detail {

// Okabe-Ito blue and vermillion: distinct for colour-blind readers and in greyscale.
inline constexpr const char* hit_colour = "#0072B2";
inline constexpr const char* miss_colour = "#D55E00";

// A gnuplot string that stays text whatever `s` holds (a server's version, a model name, a file's
// git_revision): single-quoted, because gnuplot runs `command` inside double quotes and expands
// @macros outside quotes, while inside single quotes nothing is special but the closing quote. The
// text itself never holds one: a quote or a line break closes the string and joins "\047" or "\n"
// to it with gnuplot's `.` (gnuplot's '' escape misreads runs of quotes, and its macro scan counts
// a literal quote anywhere on the line). Other control characters become spaces.
inline std::string gp_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '\'')
            out += "'.\"\\047\".'";
        else if (c == '\n')
            out += "'.\"\\n\".'";
        else if (byte < 0x20 || byte == 0x7f)
            out += ' ';
        else
            out += c;
    }
    return out + "'";
}

inline std::string dat_number(double v) { return std::isfinite(v) ? format_fixed(v, 3) : "NaN"; }

// A value label as two data columns, "y text". Its y is always a number: gnuplot 5.4 crashes when
// two `with labels` plots have only undefined points, and a run that stopped before measuring
// anything has NaN statistics. Unknown values get an empty text at y = 0.
inline std::string dat_label(double value, double y, const char* unit) {
    if (!std::isfinite(value)) return "0 \"\"";
    return dat_number(std::isfinite(y) ? y : value) + " \"" + format_fixed(value, 1) + unit + "\"";
}

inline std::string signed_ms(double v) {
    return std::isfinite(v) ? (v >= 0 ? "+" : "\u2212") + format_fixed(std::fabs(v), 1) + " ms" : "n/a";
}

// Distinct models are all named; one is named once.
inline std::string models_title(const std::vector<PhaseResult>& phases) {
    std::string out;
    for (const auto& p : phases)
        if (out.find(p.settings.model) == std::string::npos) out += (out.empty() ? "" : " / ") + p.settings.model;
    return out;
}

inline std::string only_note(const std::vector<PhaseResult>& phases) {
    if (phases.size() != 1) return "";
    const std::string& title = phases[0].phase.title;
    return " (only " + title.substr(0, title.find(':')) + " results exist)";
}

// Shared head of both scripts: where data and output are, and the look.
inline std::string script_preamble(const std::string& name, const std::string& what, int width, int height) {
    std::ostringstream s;
    s << "# kvgate figure " << name << ": " << what << "\n"
      << "# Re-draw from this directory: gnuplot " << name << ".gp\n"
      << "# Data: " << name << ".dat (written by kvgate; blocks are selected by the name in their first comment).\n"
      << "if (!exists(\"datafile\")) datafile = " << gp_quote(name + ".dat") << "\n"
      << "if (!exists(\"outfile\")) outfile = " << gp_quote(name + ".png") << "\n"
      << "set encoding utf8\n"
      << "set terminal pngcairo size " << width << "," << height << " noenhanced font \"sans,11\"\n"
      << "set output outfile\n"
      << "set style fill solid 0.85 border lc rgb \"#333333\"\n"
      << "set boxwidth 0.6\n"
      << "set grid ytics lc rgb \"#dddddd\"\n"
      << "set ytics nomirror\n"
      << "set xtics nomirror scale 0\n"
      << "set yrange [0:*]\n"
      << "# Half a bar of room at the x edges so edge boxes are whole; headroom above for the labels.\n"
      << "set offsets 0.5, 0.5, graph 0.22, 0\n"
      << "set key outside bottom center horizontal samplen 2\n";
    return s.str();
}

inline void measured_trial_rows(std::ostringstream& out, const PhaseResult& r) {
    for (Arm arm : {Arm::hit, Arm::miss}) {
        auto trials = r.measured(arm);
        double centre = arm == Arm::hit ? 0 : 1;
        for (std::size_t i = 0; i < trials.size(); ++i) {
            // Spread the dots across the bar so equal values stay visible.
            double x = trials.size() < 2 ? centre : centre - 0.2 + 0.4 * static_cast<double>(i) / (trials.size() - 1);
            out << dat_number(x) << " " << dat_number(trials[i]->ttft_ms) << " " << dat_number(trials[i]->throughput)
                << " " << trials[i]->index << " " << (arm == Arm::hit ? 0 : 1) << "\n";
        }
    }
}

}  // namespace report_detail

// Data for the results grid. Per phase with label L (P1, P2...): blocks [L-hit] and [L-miss] with one
// summary row each, and [L-trials] with one row per measured trial.
inline std::string results_data(const Experiment& experiment, const std::vector<PhaseResult>& phases) {
    using report_detail::dat_number;
    std::ostringstream out;
    out << "# kvgate data for " << results_figure_name(experiment) << ".gp. TTFT in ms, throughput in completion tokens/s.\n"
        << "# Statistics and trials are the measured trials only (warm-up trials excluded).\n"
        << "# Summary blocks, columns: x ttft_median ttft_stdev throughput_median throughput_stdev n ttft_mean "
           "throughput_mean ttft_label_y ttft_label throughput_label_y throughput_label\n"
        << "# Trial blocks, columns: x ttft_ms throughput trial_index arm(0=hit,1=miss)\n";
    for (std::size_t i = 0; i < phases.size(); ++i) {
        const PhaseResult& r = phases[i];
        const std::string& label = r.phase.label;
        for (Arm arm : {Arm::hit, Arm::miss}) {
            const ArmStats& s = arm == Arm::hit ? r.hit_stats : r.miss_stats;
            out << "\n\n# [" << label << (arm == Arm::hit ? "-hit]" : "-miss]") << " " << r.phase.title << ", "
                << to_string(arm) << "\n"
                << (arm == Arm::hit ? "0" : "1") << " " << dat_number(s.ttft_median) << " "
                << dat_number(s.ttft_stdev) << " " << dat_number(s.throughput_median) << " "
                << dat_number(s.throughput_stdev) << " " << s.n << " " << dat_number(s.ttft_mean) << " "
                << dat_number(s.throughput_mean) << " "
                // Labels sit inside the bars, where the trial dots (near the bar tops) cannot cover them.
                << report_detail::dat_label(s.ttft_median, s.ttft_median / 2, " ms") << " "
                << report_detail::dat_label(s.throughput_median, s.throughput_median / 2, " tok/s") << "\n";
        }
        out << "\n\n# [" << label << "-trials] " << r.phase.title << ", measured trials\n";
        report_detail::measured_trial_rows(out, r);
    }
    return out.str();
}

namespace report_detail {

// One panel of the grid: bars with error bars per arm, the trials as dots, values on the bars.
// Columns of the summary block (bars, labels) and of the trial block.
struct Panel {
    const char* bars;
    const char* labels;
    int trial_column;
};

inline void panel_plot(std::ostringstream& s, const std::string& block, const Panel& p) {
    s << "plot datafile index " << gp_quote(block + "-hit]") << " using " << p.bars << " with boxerrorbars lc rgb "
      << gp_quote(hit_colour) << " title \"cache hit\", \\\n"
      << "     '' index " << gp_quote(block + "-miss]") << " using " << p.bars << " with boxerrorbars lc rgb "
      << gp_quote(miss_colour) << " title \"cache miss\", \\\n"
      << "     '' index " << gp_quote(block + "-trials]") << " using 1:" << p.trial_column
      << " with points pt 7 ps 0.7 lc rgb \"#60000000\" title \"single trials\", \\\n"
      << "     '' index " << gp_quote(block + "-hit]") << " using " << p.labels
      << " with labels tc rgb \"white\" font \",12\" notitle, \\\n"
      << "     '' index " << gp_quote(block + "-miss]") << " using " << p.labels
      << " with labels tc rgb \"white\" font \",12\" notitle\n";
}

}  // namespace report_detail

// The seed's grid: one row per phase, TTFT and throughput side by side.
inline std::string results_script(const Experiment& experiment, const std::vector<PhaseResult>& phases) {
    using namespace report_detail;
    const std::string name = results_figure_name(experiment);
    const int rows = static_cast<int>(phases.size());
    std::ostringstream s;
    s << script_preamble(name, "TTFT and throughput, cache hit vs cache miss, per phase", 1400, 140 + 480 * rows)
      << "set multiplot layout " << rows << ",2 title "
      << gp_quote(experiment.title + " \u2014 model " + models_title(phases) + only_note(phases) +
                  "\nbars: median of measured trials \u00b7 error bars: \u00b11 stdev \u00b7 dots: single trials")
      << " font \",14\"\n";
    for (const PhaseResult& r : phases) {
        const std::string block = "[" + r.phase.label;
        const std::string row_title = r.phase.title + " \u00b7 " + engine_title(r.engine);
        s << "\n# " << r.phase.title << "\n"
          << "set xtics (" << gp_quote("cache hit [A,B,Q], n=" + std::to_string(r.hit_stats.n)) << " 0, "
          << gp_quote("cache miss [B,Q], n=" + std::to_string(r.miss_stats.n)) << " 1)\n";
        if (r.hit_stats.n + r.miss_stats.n == 0)
            s << "set label 2 \"no measured trials: the run stopped early (see summary.md)\""
                 " at graph 0.5, graph 0.5 center front\n";
        else if (!r.complete)
            s << "set label 2 \"partial: the run did not finish (see summary.md)\""
                 " at graph 0.5, graph 0.86 center front\n";
        s << "set title " << gp_quote(row_title + " \u2014 TTFT") << "\n"
          << "set ylabel " << gp_quote(r.settings.ttft == "engine" ? "engine's own TTFT (ms)" : "TTFT (ms)") << "\n"
          << "set label 1 "
          << gp_quote("cache miss: " + signed_pct(r.ttft_degradation_pct) + " TTFT (mean miss vs mean hit)")
          << " at graph 0.5, graph 0.94 center front font \",12\"\n";
        panel_plot(s, block, {"1:2:3", "1:9:10", 2});
        s << "unset label 1\n"
          << "set title " << gp_quote(row_title + " \u2014 throughput") << "\n"
          << "set ylabel \"throughput (tokens/s)\"\n";
        panel_plot(s, block, {"1:4:5", "1:11:12", 3});
        s << "unset label 2\n";
    }
    s << "unset multiplot\nunset output\n";
    return s.str();
}

// Data for the comparison: blocks [hit] and [miss], one row per phase.
inline std::string phase_comparison_data(const Experiment& experiment, const std::vector<PhaseResult>& phases) {
    using report_detail::dat_number;
    std::ostringstream out;
    out << "# kvgate data for " << phase_comparison_figure_name(experiment) << ".gp. TTFT in ms, measured trials only.\n"
        << "# Columns: x ttft_median ttft_stdev n ttft_mean condition label_y label\n";
    for (Arm arm : {Arm::hit, Arm::miss}) {
        out << "\n\n# [" << (arm == Arm::hit ? "hit" : "miss") << "] " << to_string(arm) << " per phase\n";
        for (std::size_t i = 0; i < phases.size(); ++i) {
            const ArmStats& s = arm == Arm::hit ? phases[i].hit_stats : phases[i].miss_stats;
            const double x = 2.5 * static_cast<double>(i) + (arm == Arm::hit ? 0 : 1);
            out << dat_number(x) << " " << dat_number(s.ttft_median) << " " << dat_number(s.ttft_stdev) << " " << s.n
                << " " << dat_number(s.ttft_mean) << " \"" << phases[i].phase.label
                << (arm == Arm::hit ? "-hit" : "-miss") << "\" "
                << report_detail::dat_label(s.ttft_median, s.ttft_median + s.ttft_stdev, " ms") << "\n";
        }
    }
    return out.str();
}

namespace report_detail {

// The transport's overhead for each phase whose in-process counterpart has results too.
inline std::string overhead_note(const std::vector<PhaseResult>& phases) {
    std::string note;
    for (const auto& served : phases) {
        if (served.phase.overhead_against.empty()) continue;
        for (const auto& direct : phases)
            if (direct.phase.name == served.phase.overhead_against)
                note += std::string(note.empty() ? "" : "\n") + "HTTP overhead (" + served.phase.label + " \u2212 " +
                        direct.phase.label + ", median TTFT): cache hit " +
                        signed_ms(served.hit_stats.ttft_median - direct.hit_stats.ttft_median) + " \u00b7 cache miss " +
                        signed_ms(served.miss_stats.ttft_median - direct.miss_stats.ttft_median);
    }
    return note.empty() ? "HTTP overhead needs results of a served phase and its in-process counterpart" : note;
}

}  // namespace report_detail

// Grouped bars, a hit and a miss bar per phase; the HTTP overhead of each served phase against its
// in-process counterpart, where both have results.
inline std::string phase_comparison_script(const Experiment& experiment, const std::vector<PhaseResult>& phases) {
    using namespace report_detail;
    const std::string name = phase_comparison_figure_name(experiment);
    const std::string overhead = overhead_note(phases);
    std::ostringstream s;
    s << script_preamble(name, "TTFT of every condition, every phase", 1000, 700) << "set title "
      << gp_quote("TTFT by condition \u2014 median of measured trials, error bars \u00b11 stdev" + only_note(phases) +
                  "\nmodel " + models_title(phases))
      << " font \",13\"\n"
      << "set ylabel \"TTFT (ms)\"\n"
      << "# Each pair of bars is one phase: its name goes under the pair, below the condition names.\n"
      << "set bmargin 9\n";
    for (std::size_t i = 0; i < phases.size(); ++i)
        s << "set label " << i + 2 << " "
          << gp_quote(phases[i].phase.title + (phases[i].settings.ttft == "engine" ? " (engine's own TTFT)" : "") +
                      "\n" + engine_title(phases[i].engine))
          << " at first " << format_fixed(2.5 * static_cast<double>(i) + 0.5, 2) << ", graph -0.1 center\n";
    s << "set label 1 " << gp_quote(overhead) << " at graph 0.5, graph 0.94 center front font \",12\"\n"
      << "plot datafile index \"[hit]\" using 1:2:3:xtic(6) with boxerrorbars lc rgb " << gp_quote(hit_colour)
      << " title \"cache hit [A,B,Q]\", \\\n"
      << "     '' index \"[miss]\" using 1:2:3:xtic(6) with boxerrorbars lc rgb " << gp_quote(miss_colour)
      << " title \"cache miss [B,Q]\", \\\n"
      << "     '' index \"[hit]\" using 1:7:8 with labels offset 0,0.8 notitle, \\\n"
      << "     '' index \"[miss]\" using 1:7:8 with labels offset 0,0.8 notitle\n"
      << "unset output\n";
    return s.str();
}


inline Figure results_figure(const Experiment& e, const std::vector<PhaseResult>& phases) {
    return {results_figure_name(e), results_data(e, phases), results_script(e, phases)};
}

inline Figure phase_comparison_figure(const Experiment& e, const std::vector<PhaseResult>& phases) {
    return {phase_comparison_figure_name(e), phase_comparison_data(e, phases), phase_comparison_script(e, phases)};
}

namespace report_detail {

struct ProcessResult {
    int status;          // exit status; 128 + signal number when killed
    std::string output;  // stdout and stderr together
};

// Runs argv[0] from PATH in `dir`, without a shell (no quoting of paths), collecting its output.
inline ProcessResult run_process(const std::vector<std::string>& argv, const std::filesystem::path& dir) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    // Prepared before fork: the child may only make async-signal-safe calls.
    const std::string dir_text = dir.empty() ? "." : dir.string();
    const std::string cannot_enter = "cannot enter directory " + dir_text + "\n";
    const std::string cannot_run = "cannot run " + argv[0] + " (is it installed and on PATH?)\n";

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw ReportError("cannot run " + argv[0] + ": pipe: " + errno_text(errno));
    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        ::close(fds[0]);
        ::close(fds[1]);
        throw ReportError("cannot run " + argv[0] + ": fork: " + errno_text(err));
    }
    if (pid == 0) {
        ::dup2(fds[1], STDOUT_FILENO);
        ::dup2(fds[1], STDERR_FILENO);
        if (::chdir(dir_text.c_str()) != 0) {
            (void)!::write(STDERR_FILENO, cannot_enter.data(), cannot_enter.size());
            ::_exit(126);
        }
        ::execvp(args[0], args.data());
        (void)!::write(STDERR_FILENO, cannot_run.data(), cannot_run.size());
        ::_exit(127);
    }
    ::close(fds[1]);
    ProcessResult result{0, ""};
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        result.output.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0)
        if (errno != EINTR) throw ReportError("cannot wait for " + argv[0] + ": " + errno_text(errno));
    result.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    return result;
}

inline bool starts_with_png_magic(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    char head[8] = {};
    in.read(head, sizeof head);
    return in.gcount() == 8 && std::string(head, 8) == "\x89PNG\r\n\x1a\n";
}

}  // namespace report_detail

inline bool gnuplot_available() { return report_detail::run_process({"gnuplot", "--version"}, ".").status == 0; }

// Writes <name>.dat and <name>.gp into `dir` and renders <name>.png, all under temporary names
// in `staged`; nothing takes its final name until staged.commit(). Throws with gnuplot's own
// words when it fails.
inline void stage_figure(const Figure& figure, const std::filesystem::path& dir, StagedFiles& staged) {
    const std::filesystem::path data = staged.write(dir / (figure.name + ".dat"), figure.data);
    const std::filesystem::path script = staged.stage(dir / (figure.name + ".gp"));
    try {
        Gnuplot gp(">" + script.string());  // gnuplot-iostream writing the script to a file
        gp << figure.script << std::flush;
        if (!gp) throw ReportError(script.string() + ": cannot write the gnuplot script");
    } catch (const std::ios_base::failure& e) {  // gnuplot-iostream's way of saying fopen failed
        throw ReportError(script.string() + ": " + e.what() + ": " + report_detail::errno_text(errno));
    }
    if (std::filesystem::file_size(script) != figure.script.size())
        throw ReportError(script.string() + ": the gnuplot script was not written completely (disk full?)");
    const std::filesystem::path png = staged.stage(dir / (figure.name + ".png"));
    // The script draws <name>.png from <name>.dat unless told otherwise; here it is told the
    // temporary names, so a failing gnuplot leaves no half-drawn figure under the real name.
    const std::string names = "datafile=" + report_detail::gp_quote(data.filename().string()) +
                              "; outfile=" + report_detail::gp_quote(png.filename().string());
    auto run = report_detail::run_process({"gnuplot", "-e", names, script.filename().string()}, dir);
    const std::string target = (dir / (figure.name + ".png")).string();
    if (run.status != 0)
        throw ReportError("gnuplot failed to draw " + target + " (exit status " + std::to_string(run.status) +
                          "; line numbers are those of " + figure.name + ".gp, run under a temporary name):\n" +
                          run.output +
                          (run.status == 127 ? "Install gnuplot with the pngcairo terminal (Debian: gnuplot-nox).\n"
                                             : "") +
                          "Nothing in " + dir.string() + " was changed.");
    if (!report_detail::starts_with_png_magic(png))
        throw ReportError("gnuplot exited cleanly but wrote no PNG for " + target + ":\n" + run.output);
}

inline void render_figure(const Figure& figure, const std::filesystem::path& dir) {
    StagedFiles staged;
    stage_figure(figure, dir, staged);
    staged.commit();
}

}  // namespace kvgate
