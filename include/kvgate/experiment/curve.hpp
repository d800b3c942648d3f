// Experiment 2, the invalidation-cost curve: runs the sweep (conversation.hpp) on an engine, checks
// the mechanism against the server's own evidence at every cell, fits the cost model (fit.hpp) to
// the cells that agree, and predicts Experiment 1's arms from it.
//
// Per cell of the schedule, with content drawn fresh for it (nothing another cell left in the cache
// can serve it): warm = the unedited conversation (1 token), settle, measured = edit + [query]
// (1 token: only its first-token time is wanted). Predicted reuse comes from the token ids of both
// rendered prompts (exact) where the engine gives them, else from the message counts (a lower
// bound). A cell whose server-reported cached tokens differ from the prediction is flagged with
// the likely cause and left out of the fit, never fitted silently.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvgate/engine/advice.hpp"
#include "kvgate/engine/engine.hpp"
#include "kvgate/engine/evidence.hpp"
#include "kvgate/experiment/conversation.hpp"
#include "kvgate/experiment/run_record.hpp"
#include "kvgate/model/experiment.hpp"
#include "kvgate/model/records.hpp"
#include "kvgate/model/results_json.hpp"
#include "kvgate/model/settings.hpp"
#include "kvgate/stats/fit.hpp"

namespace kvgate {

inline constexpr const char* curve_phase_name = "curve";

// One measured request of the sweep.
struct CurveCell {
    int trial = 0, slot = 0;
    int point = 0;  // index into SweepSpec::points()
    std::uint64_t draw = 0;
    int context_tokens = 0;  // requested
    double position = 0;
    EditKind kind = EditKind::none;
    int exchange = 0;
    int warm_tokens = 0, measured_tokens = 0;  // rendered prompts, as the requests send them
    bool ids_exact = true;                     // prediction from token ids (false: message counts, a lower bound)
    int predicted_reuse = 0, predicted_recompute = 0;
    int reported_cached = -1, reported_prompt = -1;  // the server's usage; -1 not reported
    double warm_ttft_ms = 0, ttft_ms = 0;
    std::string flag;  // empty: the server's evidence agrees with the prediction; else the disagreement and its cause

    double attended() const { return attended_context(predicted_reuse, predicted_recompute); }
};

// The sweep as the settings give it.
inline std::vector<int> parse_int_list(const std::string& key, const std::string& v, int lo, int hi) {
    std::vector<int> out;
    std::stringstream in(v);
    for (std::string item; std::getline(in, item, ',');) out.push_back(static_cast<int>(detail::parse_int(key, item, lo, hi)));
    if (out.empty()) throw std::invalid_argument(key + ": '" + v + "' lists nothing; give comma-separated values");
    return out;
}

inline std::vector<double> parse_double_list(const std::string& key, const std::string& v, double lo, double hi) {
    std::vector<double> out;
    std::stringstream in(v);
    for (std::string item; std::getline(in, item, ',');) out.push_back(detail::parse_double(key, item, lo, hi));
    if (out.empty()) throw std::invalid_argument(key + ": '" + v + "' lists nothing; give comma-separated values");
    return out;
}

inline SweepSpec sweep_spec(const Settings& s) {
    SweepSpec spec;
    spec.context_tokens = parse_int_list("KVGATE_CURVE_CONTEXTS", s.curve.contexts, 64, 1 << 20);
    spec.positions = parse_double_list("KVGATE_CURVE_POSITIONS", s.curve.positions, 0, 1);
    spec.trials = s.curve.trials;
    spec.points();  // misuse throws here, before an engine is asked anything
    return spec;
}

struct CurveResult {
    PhaseDescriptor phase;
    Settings settings;
    std::string timestamp, git_revision;
    EngineInfo engine;
    std::vector<CurveCell> cells;  // run order
    std::optional<Fault> fault;
    CounterDeltas counters;
    double wall_time_s = 0;
    bool complete = false;
};

using CellObserver = std::function<void(const CurveResult&, const CurveCell&, int total)>;

inline std::string curve_progress_line(const CurveCell& c, int done, int total) {
    char buf[320];
    std::snprintf(buf, sizeof buf, "[curve] %d/%d ctx %4d %-8s at %.2f (exchange %2d) TTFT %8.2f ms  cached %4d of %4d, predicted %4d%s%s",
                  done, total, c.context_tokens, edit_kind_name(c.kind), c.position, c.exchange, c.ttft_ms,
                  c.reported_cached, c.measured_tokens, c.predicted_reuse, c.flag.empty() ? "" : "  FLAGGED: ",
                  c.flag.c_str());
    return buf;
}

// The server's evidence against the prediction: empty when they agree, else what differs and why.
// `how_to_report`: the engine's way to make it report cached tokens (EngineAdvice).
inline std::string evidence_flag(const CurveCell& c, int block_size, const std::string& how_to_report = "") {
    if (c.reported_cached < 0)
        return "the server reported no cached tokens" + (how_to_report.empty() ? "" : " (" + how_to_report + ")");
    if (c.reported_prompt >= 0 && c.reported_prompt != c.measured_tokens)
        return "the server counted " + std::to_string(c.reported_prompt) + " prompt tokens, the tokenizer " +
               std::to_string(c.measured_tokens) + ": the request was rendered differently from what was predicted";
    if (c.reported_cached == c.predicted_reuse) return "";
    if (block_size <= 0)
        return "block size unknown: the prediction is counted to the token, the server reuses whole blocks";
    if (c.reported_cached > c.predicted_reuse)
        return c.ids_exact ? "more reused than the shared prefix allows: another request left matching blocks"
                           : "more reused than the message counts predict (their bound is low: the changed message "
                             "shares tokens with the warm one)";
    return "less reused than predicted: the warm request's blocks were evicted or not cached";
}

// Runs the sweep. Misuse (an engine without chat messages, bad sweep settings) throws; after that
// a fault stops the run and keeps the cells completed before it.
inline CurveResult run_curve(Engine& engine, const Settings& s, const CellObserver& observe = {}) {
    const auto started = Clock::now();
    if (!engine.takes_messages())
        throw std::invalid_argument("kvgate curve: the engine takes no chat messages; Experiment 2 sends a "
                                    "conversation as messages: use --engine vllm_http --endpoint chat");
    const SweepSpec spec = sweep_spec(s);
    const auto points = spec.points();
    CurveResult r;
    r.phase = phase_descriptor(curve_phase_name);
    r.settings = s;
    const RunHeader header = run_header(s.seed);
    r.settings.seed = header.seed;
    r.timestamp = header.timestamp;
    r.git_revision = header.git_revision;
    r.engine = engine.describe();
    const int block = r.engine.block_size;
    const EngineAdvice advice = engine_advice(s.engine);

    ConversationBuilder builder(r.settings.seed, [&](const std::vector<Message>& m) -> std::optional<int> {
        const auto ids = engine.message_token_ids(m, false);
        if (!ids) return std::nullopt;
        return static_cast<int>(ids->size());
    });
    const auto order = schedule(spec);
    const int total = static_cast<int>(order.size());
    const CounterSnapshot before = engine.prefix_cache_counters();
    for (const auto& sc : order) {
        const SweepPoint& p = points[sc.point];
        CurveCell c;
        c.trial = sc.trial;
        c.slot = sc.slot;
        c.point = static_cast<int>(sc.point);
        c.draw = sc.draw;
        c.context_tokens = p.context_tokens;
        c.position = p.position;
        c.kind = p.edit.kind;
        c.exchange = p.edit.exchange;
        // Content and its prediction are made before either request is timed.
        const Conversation warm = builder.build(sc.draw, spec.shape, p.exchanges);
        const MeasuredConversation measured = builder.measured(warm, p.edit);
        const auto warm_ids = engine.message_token_ids(warm.messages, true);
        const auto measured_ids = engine.message_token_ids(measured.messages, true);
        ReusePrediction pred;
        if (warm_ids && measured_ids) {
            pred = predict_reuse(*warm_ids, *measured_ids, block);
            c.warm_tokens = static_cast<int>(warm_ids->size());
        } else {
            pred = predict_reuse(measured, block);
            c.ids_exact = false;
            c.warm_tokens = warm.warm_tokens();
        }
        c.measured_tokens = pred.measured_tokens;
        c.predicted_reuse = pred.reuse_tokens;
        c.predicted_recompute = pred.recompute_tokens;

        auto fail = [&](Completion& done, FaultRequest request) {
            done.fault->trial = sc.trial + 1;
            done.fault->request = request;
            done.fault->message = "cell " + std::to_string(r.cells.size() + 1) + " (" + edit_kind_name(c.kind) +
                                  " at " + std::to_string(c.position) + ", context " +
                                  std::to_string(c.context_tokens) + "), " + to_string(request) + " request: " +
                                  done.fault->message;
            r.fault = done.fault;
        };
        Completion w = engine.complete_messages(warm.messages, 1);
        if (w.fault) {
            fail(w, FaultRequest::warm);
            break;
        }
        c.warm_ttft_ms = w.record.stamps.first_token_ms.value_or(0);
        std::this_thread::sleep_for(std::chrono::milliseconds(s.curve.settle_ms));
        Completion m = engine.complete_messages(measured.messages, 1);
        if (m.fault) {
            fail(m, FaultRequest::measured);
            break;
        }
        c.ttft_ms = m.record.stamps.first_token_ms.value_or(0);
        c.reported_cached = m.record.usage.cached_tokens;
        c.reported_prompt = m.record.usage.prompt_tokens;
        c.flag = evidence_flag(c, block, advice.report_cached_tokens);
        r.cells.push_back(c);
        if (observe) observe(r, r.cells.back(), total);
    }
    r.counters = counter_deltas(before, engine.prefix_cache_counters());
    r.complete = !r.fault;
    r.wall_time_s = ms_between(started, Clock::now()) / 1000;
    return r;
}

// ---------------------------------------------------------------------------------------------
// Analysis: points (cells grouped by sweep point), the fit on the agreeing cells, and what the fit
// says about Experiment 1 and about the user's question.

struct CurvePoint {
    int point = 0, context_tokens = 0, exchange = 0;
    double position = 0;
    EditKind kind = EditKind::none;
    int n = 0, flagged = 0;
    double ttft_mean_ms = 0, recompute_mean = 0, reuse_mean = 0;
};

struct CurveAnalysis {
    std::vector<CurvePoint> points;
    int cells = 0, flagged = 0;
    CostFit fit;
    std::optional<CostInterval> per_token;  // a + b*C at the cells' median attended context
    double per_token_context = 0;
};

inline CurveAnalysis analyse_curve(const std::vector<CurveCell>& cells, double confidence) {
    CurveAnalysis a;
    std::map<int, CurvePoint> by_point;
    std::vector<CostObservation> obs;
    std::vector<double> contexts;
    for (const auto& c : cells) {
        auto& p = by_point[c.point];
        p.point = c.point;
        p.context_tokens = c.context_tokens;
        p.exchange = c.exchange;
        p.position = c.position;
        p.kind = c.kind;
        ++a.cells;
        if (!c.flag.empty()) {
            ++p.flagged;
            ++a.flagged;
            continue;
        }
        ++p.n;
        p.ttft_mean_ms += c.ttft_ms;
        p.recompute_mean += c.predicted_recompute;
        p.reuse_mean += c.predicted_reuse;
        obs.push_back({static_cast<double>(c.predicted_recompute), c.attended(), c.ttft_ms});
        contexts.push_back(c.attended());
    }
    for (auto& [i, p] : by_point) {
        if (p.n > 0) {
            p.ttft_mean_ms /= p.n;
            p.recompute_mean /= p.n;
            p.reuse_mean /= p.n;
        }
        a.points.push_back(p);
    }
    a.fit = fit_cost_model(obs, confidence);
    if (a.fit.ok() && !contexts.empty()) {
        std::sort(contexts.begin(), contexts.end());
        a.per_token_context = contexts[contexts.size() / 2];
        a.per_token = cost_per_token(a.fit, a.per_token_context);
    }
    return a;
}

// Experiment 2's one pass rule, which `kvgate run experiment2`, the gpu test and the report all read:
// no fault, a finished sweep, every cell's server-reported reuse as predicted, a fit that stands, and
// a cost per recomputed token whose interval lies above zero (a curve that may cost nothing shows
// nothing). `fault`: the fault's message, empty for none.
inline RunHeadline curve_verdict(const std::string& fault, bool complete, const CurveAnalysis& a) {
    if (!fault.empty()) return {Outcome::error, "fault: " + fault, "", {}};
    if (!complete) return {Outcome::error, "the sweep did not finish (the file is a checkpoint)", "re-run the sweep", {}};
    if (a.flagged > 0)
        return {Outcome::fail,
                std::to_string(a.flagged) + " of " + std::to_string(a.cells) +
                    " cells: the server-reported reuse is not the predicted reuse",
                "",
                {}};
    if (!a.fit.ok()) return {Outcome::indeterminate, "no fit: " + a.fit.problem, "", {}};
    if (!a.per_token || a.per_token->low <= 0)
        return {Outcome::indeterminate, "the cost per recomputed token may be zero (its interval reaches 0)",
                "more trials (--curve-trials) or longer contexts (--curve-contexts)", {}};
    return {Outcome::pass,
            std::to_string(a.cells) + " of " + std::to_string(a.cells) +
                " cells reused as predicted, and each recomputed token costs time",
            "",
            {}};
}

inline RunHeadline curve_verdict(const CurveResult& r, const CurveAnalysis& a) {
    return curve_verdict(r.fault ? r.fault->message : "", r.complete, a);
}

// One of Experiment 1's arms predicted by the curve, beside what was measured.
struct ArmPrediction {
    Arm arm = Arm::hit;
    int n = 0;
    double recompute_tokens = 0, reuse_tokens = 0;  // means over the measured trials, from the server's usage
    double measured_mean_ms = 0;
    CostPrediction predicted;
    bool within() const { return predicted.low <= measured_mean_ms && measured_mean_ms <= predicted.high; }
};

inline std::vector<ArmPrediction> predict_experiment1(const CostFit& fit, const PhaseResult& phase1) {
    std::vector<ArmPrediction> out;
    if (!fit.ok()) return out;
    for (Arm arm : {Arm::hit, Arm::miss}) {
        ArmPrediction p;
        p.arm = arm;
        for (const Trial* t : phase1.measured(arm)) {
            const int prompt = t->measured.usage.prompt_tokens >= 0 ? t->measured.usage.prompt_tokens
                                                                    : t->prompt_tokens_expected;
            const int cached = std::max(0, t->measured.usage.cached_tokens);
            p.recompute_tokens += prompt - cached;
            p.reuse_tokens += cached;
            p.measured_mean_ms += t->ttft_ms;
            ++p.n;
        }
        if (p.n == 0) continue;
        p.recompute_tokens /= p.n;
        p.reuse_tokens /= p.n;
        p.measured_mean_ms /= p.n;
        p.predicted = predict(fit, p.recompute_tokens, attended_context(p.reuse_tokens, p.recompute_tokens));
        out.push_back(p);
    }
    return out;
}

// "Removing a turn at `position` of a `context`-token conversation costs about X ms": the next
// request's TTFT after the edit, beside the unedited conversation's (the full hit), from the fit.
// Reuse is whole blocks, so a late edit can recompute fewer tokens than the full hit does (its
// prompt is shorter by the turn and both keep the same blocks).
struct EditCost {
    double position = 0;
    int context_tokens = 0;
    int recompute_tokens = 0, hit_recompute_tokens = 0;
    CostPrediction ttft, hit_ttft;
};

inline EditCost removal_cost(const CostFit& fit, const ConversationShape& shape, int context_tokens, double position,
                             int block_size) {
    EditCost e;
    e.position = position;
    e.context_tokens = context_tokens;
    const int block = block_size > 0 ? block_size : 1;
    const int query = shape.query_tokens;
    const auto hit = predict_reuse(context_tokens, context_tokens + query, block);
    const int shared = static_cast<int>(std::lround(position * context_tokens));
    const auto edit = predict_reuse(shared, context_tokens - shape.exchange_tokens() + query, block);
    e.recompute_tokens = edit.recompute_tokens;
    e.hit_recompute_tokens = hit.recompute_tokens;
    e.ttft = predict(fit, edit.recompute_tokens, attended_context(edit.reuse_tokens, edit.recompute_tokens));
    e.hit_ttft = predict(fit, hit.recompute_tokens, attended_context(hit.reuse_tokens, hit.recompute_tokens));
    return e;
}

// ---------------------------------------------------------------------------------------------
// results_curve.json: every cell (the raw trials), and the analysis drawn from them. The report
// reads the cells back and analyses them again with the same code, so the file cannot disagree
// with its figure.

inline constexpr int curve_schema_version = 1;

inline nlohmann::json curve_cell_json(const CurveCell& c) {
    return {{"trial", c.trial},
            {"slot", c.slot},
            {"point", c.point},
            {"draw", c.draw},
            {"context_tokens", c.context_tokens},
            {"position", c.position},
            {"edit", edit_kind_name(c.kind)},
            {"exchange", c.exchange},
            {"warm_tokens", c.warm_tokens},
            {"measured_tokens", c.measured_tokens},
            {"prediction_from_token_ids", c.ids_exact},
            {"predicted_reuse_tokens", c.predicted_reuse},
            {"predicted_recompute_tokens", c.predicted_recompute},
            {"reported_cached_tokens", c.reported_cached < 0 ? nlohmann::json() : nlohmann::json(c.reported_cached)},
            {"reported_prompt_tokens", c.reported_prompt < 0 ? nlohmann::json() : nlohmann::json(c.reported_prompt)},
            {"warm_ttft_ms", c.warm_ttft_ms},
            {"ttft_ms", c.ttft_ms},
            {"flag", c.flag.empty() ? nlohmann::json() : nlohmann::json(c.flag)}};
}

inline nlohmann::json coefficient_json(const Coefficient& c) {
    return {{"estimate", c.estimate}, {"std_error", c.std_error}, {"low", c.low}, {"high", c.high}};
}

inline nlohmann::json interval_json(const CostInterval& c) {
    return {{"estimate", c.estimate}, {"low", c.low}, {"high", c.high}};
}

inline nlohmann::json curve_analysis_json(const CurveAnalysis& a) {
    nlohmann::json j;
    j["cells"] = a.cells;
    j["flagged_cells"] = a.flagged;
    j["points"] = nlohmann::json::array();
    for (const auto& p : a.points)
        j["points"].push_back({{"point", p.point},
                               {"context_tokens", p.context_tokens},
                               {"position", p.position},
                               {"edit", edit_kind_name(p.kind)},
                               {"exchange", p.exchange},
                               {"n", p.n},
                               {"flagged", p.flagged},
                               {"ttft_mean_ms", p.ttft_mean_ms},
                               {"recompute_mean_tokens", p.recompute_mean},
                               {"reuse_mean_tokens", p.reuse_mean}});
    const auto& f = a.fit;
    nlohmann::json fit = {{"model", "TTFT = t0 + a*R + b*R*C"},
                          {"problem", f.problem.empty() ? nlohmann::json() : nlohmann::json(f.problem)},
                          {"selection", f.selection},
                          {"terms", f.attention_term() ? "t0 + a*R + b*R*C" : "t0 + a*R"},
                          {"n", f.n},
                          {"dof", f.dof},
                          {"confidence", f.confidence},
                          {"t0_ms", coefficient_json(f.fixed_ms)},
                          {"a_ms_per_token", coefficient_json(f.ms_per_token)},
                          {"b_ms_per_token_context", coefficient_json(f.ms_per_token_context)},
                          {"residual_sd_ms", f.residual_sd},
                          {"r_squared", f.r_squared},
                          // What a prediction's interval needs (linear_combination), so the report reads
                          // the fit the run made rather than fitting again.
                          {"t_quantile", f.t_quantile},
                          {"covariance", f.covariance}};
    if (a.per_token) {
        fit["cost_per_recomputed_token_ms"] = interval_json(*a.per_token);
        fit["cost_per_recomputed_token_at_context"] = a.per_token_context;
    }
    j["fit"] = fit;
    return j;
}

inline nlohmann::json curve_result_json(const CurveResult& r) {
    nlohmann::json j;
    j["schema_version"] = curve_schema_version;
    j["experiment"] = "experiment2";
    j["phase"] = r.phase.name;
    j["timestamp"] = r.timestamp;
    j["git_revision"] = r.git_revision;
    j["engine"] = {{"name", r.engine.name},
                   {"version", r.engine.version},
                   {"url", r.engine.url},
                   {"endpoint", r.engine.endpoint},
                   {"block_size", r.engine.block_size},
                   {"prefix_caching", r.engine.prefix_caching}};
    const SweepSpec spec = sweep_spec(r.settings);
    j["settings"] = {{"model", r.settings.target.model},
                     {"seed", r.settings.seed},
                     {"settle_ms", r.settings.curve.settle_ms},
                     {"confidence", r.settings.gate.confidence},
                     {"curve_contexts", r.settings.curve.contexts},
                     {"curve_positions", r.settings.curve.positions},
                     {"curve_trials", r.settings.curve.trials},
                     {"shape",
                      {{"system_tokens", spec.shape.system_tokens},
                       {"user_tokens", spec.shape.user_tokens},
                       {"assistant_tokens", spec.shape.assistant_tokens},
                       {"query_tokens", spec.shape.query_tokens}}}};
    j["complete"] = r.complete;
    j["wall_time_s"] = r.wall_time_s;
    j["fault"] = r.fault ? nlohmann::json{{"kind", to_string(r.fault->kind)},
                                          {"stage", to_string(r.fault->stage)},
                                          {"message", r.fault->message}}
                         : nlohmann::json();
    j["counters"] = {{"available", r.counters.available}, {"queries", r.counters.queries}, {"hits", r.counters.hits}};
    j["cells"] = nlohmann::json::array();
    for (const auto& c : r.cells) j["cells"].push_back(curve_cell_json(c));
    j["analysis"] = curve_analysis_json(analyse_curve(r.cells, r.settings.gate.confidence));
    return j;
}

inline Coefficient coefficient_from_json(const nlohmann::json& j) {
    return {j.at("estimate").get<double>(), j.at("std_error").get<double>(), j.at("low").get<double>(),
            j.at("high").get<double>()};
}

inline EditKind edit_kind_from_json(const nlohmann::json& j) {
    const auto name = j.get<std::string>();
    for (EditKind k : {EditKind::none, EditKind::remove, EditKind::replace, EditKind::truncate})
        if (name == edit_kind_name(k)) return k;
    throw std::invalid_argument("edit '" + name + "' is not an edit kind");
}

// The analysis as the run recorded it. nullopt: a file from before the fit's covariance was
// recorded, whose analysis only its cells can give.
inline std::optional<CurveAnalysis> curve_analysis_from_json(const nlohmann::json& j) {
    const auto& fit = j.at("fit");
    if (!fit.contains("covariance")) return std::nullopt;
    CurveAnalysis a;
    a.cells = j.at("cells").get<int>();
    a.flagged = j.at("flagged_cells").get<int>();
    for (const auto& p : j.at("points")) {
        CurvePoint x;
        x.point = p.at("point").get<int>();
        x.context_tokens = p.at("context_tokens").get<int>();
        x.position = p.at("position").get<double>();
        x.kind = edit_kind_from_json(p.at("edit"));
        x.exchange = p.at("exchange").get<int>();
        x.n = p.at("n").get<int>();
        x.flagged = p.at("flagged").get<int>();
        x.ttft_mean_ms = p.at("ttft_mean_ms").get<double>();
        x.recompute_mean = p.at("recompute_mean_tokens").get<double>();
        x.reuse_mean = p.at("reuse_mean_tokens").get<double>();
        a.points.push_back(x);
    }
    CostFit& f = a.fit;
    f.problem = fit.at("problem").is_null() ? "" : fit.at("problem").get<std::string>();
    f.selection = fit.at("selection").get<std::string>();
    f.terms = fit.at("terms").get<std::string>() == "t0 + a*R + b*R*C" ? CostTerms::attention : CostTerms::linear;
    f.n = fit.at("n").get<int>();
    f.dof = fit.at("dof").get<int>();
    f.confidence = fit.at("confidence").get<double>();
    f.fixed_ms = coefficient_from_json(fit.at("t0_ms"));
    f.ms_per_token = coefficient_from_json(fit.at("a_ms_per_token"));
    f.ms_per_token_context = coefficient_from_json(fit.at("b_ms_per_token_context"));
    f.residual_sd = fit.at("residual_sd_ms").get<double>();
    f.r_squared = fit.at("r_squared").get<double>();
    f.t_quantile = fit.at("t_quantile").get<double>();
    f.covariance = fit.at("covariance").get<std::array<std::array<double, 3>, 3>>();
    if (fit.contains("cost_per_recomputed_token_ms")) {
        const auto& c = fit.at("cost_per_recomputed_token_ms");
        a.per_token = CostInterval{c.at("estimate").get<double>(), c.at("low").get<double>(), c.at("high").get<double>()};
        a.per_token_context = fit.at("cost_per_recomputed_token_at_context").get<double>();
    }
    return a;
}

// What the report needs back from the file: the cells, the settings that shaped them, the engine,
// and the analysis the run made of them.
struct CurveFile {
    std::vector<CurveCell> cells;
    CurveAnalysis analysis;
    double confidence = 0.95;
    int block_size = 0;
    std::string engine, model, timestamp;
    double wall_time_s = 0;
    bool complete = false;
    std::string fault;  // its message; empty: none
    ConversationShape shape;
};

inline CurveFile parse_curve_json(const nlohmann::json& j, const std::string& where) {
    try {
        if (j.at("schema_version").get<int>() != curve_schema_version)
            throw std::invalid_argument("schema_version " + j.at("schema_version").dump() + " is not " +
                                        std::to_string(curve_schema_version) + "; re-run kvgate curve");
        CurveFile f;
        f.confidence = j.at("settings").at("confidence").get<double>();
        f.model = j.at("settings").at("model").get<std::string>();
        const auto& sh = j.at("settings").at("shape");
        f.shape.system_tokens = sh.at("system_tokens").get<int>();
        f.shape.user_tokens = sh.at("user_tokens").get<int>();
        f.shape.assistant_tokens = sh.at("assistant_tokens").get<int>();
        f.shape.query_tokens = sh.at("query_tokens").get<int>();
        f.block_size = j.at("engine").at("block_size").get<int>();
        f.engine = j.at("engine").at("name").get<std::string>() + " " + j.at("engine").at("version").get<std::string>();
        f.timestamp = j.at("timestamp").get<std::string>();
        f.wall_time_s = j.at("wall_time_s").get<double>();
        f.complete = j.at("complete").get<bool>();
        if (const auto& fault = j.at("fault"); !fault.is_null()) f.fault = fault.at("message").get<std::string>();
        for (const auto& c : j.at("cells")) {
            CurveCell x;
            x.trial = c.at("trial").get<int>();
            x.slot = c.at("slot").get<int>();
            x.point = c.at("point").get<int>();
            x.draw = c.at("draw").get<std::uint64_t>();
            x.context_tokens = c.at("context_tokens").get<int>();
            x.position = c.at("position").get<double>();
            x.kind = edit_kind_from_json(c.at("edit"));
            x.exchange = c.at("exchange").get<int>();
            x.warm_tokens = c.at("warm_tokens").get<int>();
            x.measured_tokens = c.at("measured_tokens").get<int>();
            x.ids_exact = c.at("prediction_from_token_ids").get<bool>();
            x.predicted_reuse = c.at("predicted_reuse_tokens").get<int>();
            x.predicted_recompute = c.at("predicted_recompute_tokens").get<int>();
            x.reported_cached = c.at("reported_cached_tokens").is_null() ? -1 : c.at("reported_cached_tokens").get<int>();
            x.reported_prompt = c.at("reported_prompt_tokens").is_null() ? -1 : c.at("reported_prompt_tokens").get<int>();
            x.warm_ttft_ms = c.at("warm_ttft_ms").get<double>();
            x.ttft_ms = c.at("ttft_ms").get<double>();
            x.flag = c.at("flag").is_null() ? "" : c.at("flag").get<std::string>();
            f.cells.push_back(x);
        }
        const auto recorded = curve_analysis_from_json(j.at("analysis"));
        f.analysis = recorded ? *recorded : analyse_curve(f.cells, f.confidence);
        return f;
    } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument(where + ": not a kvgate curve results file (" + e.what() + "); re-run kvgate curve");
    }
}

// Experiment 2's answer in the shared vocabulary: the verdict, then the evidence and the fit.
inline RunHeadline curve_headline(const CurveResult& r) {
    const auto a = analyse_curve(r.cells, r.settings.gate.confidence);
    RunHeadline h = curve_verdict(r, a);
    h.details.push_back(std::to_string(a.cells - a.flagged) + " of " + std::to_string(a.cells) +
                        " cells: server-reported reuse = predicted reuse");
    std::ostringstream fit;
    if (a.fit.ok()) {
        const auto& f = a.fit;
        fit << "fit: t0 " << f.fixed_ms.estimate << " ms [" << f.fixed_ms.low << ", " << f.fixed_ms.high << "], a "
            << f.ms_per_token.estimate << " ms/token [" << f.ms_per_token.low << ", " << f.ms_per_token.high << "]";
        if (f.attention_term())
            fit << ", b " << f.ms_per_token_context.estimate << " [" << f.ms_per_token_context.low << ", "
                << f.ms_per_token_context.high << "]";
        fit << "; " << f.selection;
        if (a.per_token)
            fit << "; cost per recomputed token at context " << a.per_token_context << ": " << a.per_token->estimate
                << " ms [" << a.per_token->low << ", " << a.per_token->high << "]";
    } else {
        fit << "no fit: " << a.fit.problem;
    }
    h.details.push_back(fit.str());
    h.details.push_back("wall time " + std::to_string(r.wall_time_s) + " s");
    return h;
}

// run_curve through the shared run-and-record loop: the results file at `path` after every cell and
// at the end, a progress line per cell.
inline CurveResult record_curve(Engine& engine, const Settings& s, const std::filesystem::path& path,
                                std::ostream& progress) {
    return run_and_record<CurveResult>(
        path, progress,
        [&](const Checkpoint<CurveResult>& checkpoint) {
            return run_curve(engine, s, [&](const CurveResult& partial, const CurveCell& c, int total) {
                checkpoint(partial, curve_progress_line(c, static_cast<int>(partial.cells.size()), total));
            });
        },
        [](const CurveResult& r, const std::filesystem::path& path) {
            write_file_atomically(path, curve_result_json(r).dump(2) + "\n");
        });
}

}  // namespace kvgate
