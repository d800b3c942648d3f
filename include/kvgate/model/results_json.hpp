// A PhaseResult as the seed experiment's results_<phase>.json (plus kvgate's extensions), and back.
// Each structure's JSON form is described once, as a list of fields (key, how the value is
// written, how it is read and checked); writing and reading both walk that list, so they cannot
// drift apart. Unknown values are JSON null: absent stamps, usage the server did not report (-1 in
// the record), block size 0, and non-finite numbers (JSON has no NaN).
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvgate/model/experiment.hpp"
#include "kvgate/model/records.hpp"
#include "kvgate/model/report_files.hpp"

// The build passes the project version; the fallback keeps the header usable on its own.
#ifndef KVGATE_VERSION
#define KVGATE_VERSION "0.1.0"
#endif

namespace kvgate {

// Bumped when a reader of the old layout would misread the new one.
inline constexpr int results_schema_version = 1;

namespace results_json {

using json = nlohmann::json;

// One value of a results document with its JSON path, for errors that say exactly what is wrong.
class JsonField {
public:
    JsonField(const nlohmann::json& value, std::string path, const std::string& source)
        : value_(&value), path_(std::move(path)), source_(&source) {}

    JsonField operator[](const char* key) const {
        expect(value_->is_object(), "an object");
        std::string path = path_.empty() ? key : path_ + "." + key;
        auto it = value_->find(key);
        if (it == value_->end())
            throw ReportError(*source_ + ": " + path +
                              " missing — the file is truncated or not a kvgate results file; re-run the phase");
        return JsonField(*it, std::move(path), *source_);
    }

    std::vector<JsonField> elements() const {
        expect(value_->is_array(), "an array");
        std::vector<JsonField> out;
        for (std::size_t i = 0; i < value_->size(); ++i)
            out.emplace_back((*value_)[i], path_ + "[" + std::to_string(i) + "]", *source_);
        return out;
    }

    bool is_null() const { return value_->is_null(); }
    bool has(const char* key) const { return value_->is_object() && value_->contains(key); }
    const std::string& source() const { return *source_; }

    // null stands for a value JSON cannot hold (NaN, infinity).
    double number() const {
        if (value_->is_null()) return std::numeric_limits<double>::quiet_NaN();
        expect(value_->is_number(), "a number or null");
        return value_->get<double>();
    }

    std::optional<double> optional_number() const {
        if (value_->is_null()) return std::nullopt;
        return number();
    }

    int integer() const {
        expect(value_->is_number_integer(), "a whole number");
        auto x = value_->get<long long>();
        if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max())
            fail("is out of range (" + value_->dump() + ")");
        return static_cast<int>(x);
    }

    int integer_or(int if_null) const { return value_->is_null() ? if_null : integer(); }

    std::uint64_t unsigned_integer() const {
        expect(value_->is_number_unsigned(), "a non-negative whole number");
        return value_->get<std::uint64_t>();
    }

    bool boolean() const {
        expect(value_->is_boolean(), "true or false");
        return value_->get<bool>();
    }

    std::string string() const {
        expect(value_->is_string(), "a string");
        return value_->get<std::string>();
    }

    [[noreturn]] void fail(const std::string& problem) const {
        throw ReportError(*source_ + ": " + (path_.empty() ? std::string("the top level") : path_) + " " + problem +
                          " — the file was edited or not written by kvgate; re-run the phase");
    }

private:
    void expect(bool ok, const char* wanted) const {
        if (!ok) fail("is " + std::string(value_->type_name()) + ", expected " + wanted);
    }

    const nlohmann::json* value_;
    std::string path_;
    const std::string* source_;
};

// How one kind of value is written and read. Each codec: static json write(const V&) and
// static void read(V&, const JsonField&).
struct Number {  // null stands for NaN and infinity
    static json write(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
    static void read(double& v, const JsonField& j) { v = j.number(); }
};
struct OptionalNumber {
    static json write(const std::optional<double>& v) { return v ? Number::write(*v) : json(nullptr); }
    static void read(std::optional<double>& v, const JsonField& j) { v = j.optional_number(); }
};
struct Count {  // -1 (not reported) is null
    static json write(int v) { return v < 0 ? json(nullptr) : json(v); }
    static void read(int& v, const JsonField& j) { v = j.integer_or(-1); }
};
struct PositiveOrNull {  // 0 (unknown) is null
    static json write(int v) { return v > 0 ? json(v) : json(nullptr); }
    static void read(int& v, const JsonField& j) { v = j.integer_or(0); }
};
struct MedianOrNull {  // negative (not reported) is null
    static json write(double v) { return v < 0 ? json(nullptr) : Number::write(v); }
    static void read(double& v, const JsonField& j) { v = j.is_null() ? -1 : j.number(); }
};
struct Integer {
    static json write(int v) { return v; }
    static void read(int& v, const JsonField& j) { v = j.integer(); }
};
struct Unsigned {
    static json write(std::uint64_t v) { return v; }
    static void read(std::uint64_t& v, const JsonField& j) { v = j.unsigned_integer(); }
};
struct Boolean {
    static json write(bool v) { return v; }
    static void read(bool& v, const JsonField& j) { v = j.boolean(); }
};
struct String {
    static json write(const std::string& v) { return v; }
    static void read(std::string& v, const JsonField& j) { v = j.string(); }
};

// An enum by its stable name.
template <class E, const char* (*Name)(E), std::optional<E> (*Parse)(const std::string&)>
struct Named {
    static json write(E v) { return Name(v); }
    static void read(E& v, const JsonField& j) {
        const std::string name = j.string();
        if (auto parsed = Parse(name)) {
            v = *parsed;
            return;
        }
        j.fail("is '" + name + "', which this kvgate does not know");
    }
};

struct OutcomeName {
    static json write(Outcome v) { return to_string(v); }
    static void read(Outcome& v, const JsonField& j) {
        const std::string name = j.string();
        for (Outcome o : {Outcome::pass, Outcome::fail, Outcome::indeterminate, Outcome::unverified, Outcome::error})
            if (name == to_string(o)) {
                v = o;
                return;
            }
        j.fail("is '" + name + "', expected one of pass, fail, indeterminate, unverified, error");
    }
};
inline const char* fault_kind_name(FaultKind k) { return to_string(k); }
inline const char* fault_request_name(FaultRequest r) { return to_string(r); }
inline const char* fault_stage_name(FaultStage s) { return to_string(s); }

template <class T>
struct Field {
    const char* key;
    std::function<json(const T&)> write;
    std::function<void(T&, const JsonField&)> read;
    // Optional: written only when not null, read only when present (kvgate's later additions, so
    // that files without them still read, and single-server files stay as they were).
    bool optional = false;
    // Added after files were written without it: absent on reading leaves the default.
    bool added_later = false;
};

// A field added after schema 1's first files (they lack it; it is always written now).
template <class T>
Field<T> added_later(Field<T> f) {
    f.added_later = true;
    return f;
}

// A field whose value `access` reaches inside T (a member, or a member of a member).
template <class Codec, class T, class Access>
Field<T> field(const char* key, Access access) {
    return {key, [access](const T& t) { return Codec::write(access(const_cast<T&>(t))); },
            [access](T& t, const JsonField& j) { Codec::read(access(t), j); }};
}

template <class Codec, class T, class V>
Field<T> member(const char* key, V T::*m) {
    return field<Codec, T>(key, [m](T& t) -> V& { return t.*m; });
}

template <class Codec, class T, class Access>
Field<T> optional_field(const char* key, Access access) {
    Field<T> f = field<Codec, T>(key, access);
    f.optional = true;
    return f;
}

template <class T>
json write_object(const std::vector<Field<T>>& fields, const T& value) {
    json out = json::object();
    for (const auto& f : fields) {
        json v = f.write(value);
        // Left out also at its default (an unchecked trial's reuse): files stay as before.
        if (!(f.optional && (v.is_null() || v == f.write(T{})))) out[f.key] = std::move(v);
    }
    return out;
}

template <class T>
void read_object(const std::vector<Field<T>>& fields, T& value, const JsonField& j) {
    for (const auto& f : fields)
        if ((!f.optional && !f.added_later) || j.has(f.key)) f.read(value, j[f.key]);
}

// A nested object described by its own field list.
template <class T, const std::vector<Field<T>>& (*Fields)()>
struct Object {
    static json write(const T& v) { return write_object(Fields(), v); }
    static void read(T& v, const JsonField& j) { read_object(Fields(), v, j); }
};

template <class Codec, class V>
struct Nullable {
    static json write(const std::optional<V>& v) { return v ? Codec::write(*v) : json(nullptr); }
    static void read(std::optional<V>& v, const JsonField& j) {
        if (j.is_null()) {
            v.reset();
            return;
        }
        V value{};
        Codec::read(value, j);
        v = std::move(value);
    }
};

// A list of values of one codec; an empty list is null (absent where the field is optional).
template <class Codec, class V>
struct List {
    static json write(const std::vector<V>& v) {
        if (v.empty()) return json(nullptr);
        json out = json::array();
        for (const auto& x : v) out.push_back(Codec::write(x));
        return out;
    }
    static void read(std::vector<V>& v, const JsonField& j) {
        v.clear();
        if (j.is_null()) return;
        for (const auto& e : j.elements()) {
            V x{};
            Codec::read(x, e);
            v.push_back(std::move(x));
        }
    }
};

struct StringOrNull {  // "" is null
    static json write(const std::string& v) { return v.empty() ? json(nullptr) : json(v); }
    static void read(std::string& v, const JsonField& j) { v = j.is_null() ? std::string() : j.string(); }
};

inline const char* placement_outcome_name(PlacementOutcome o) { return to_string(o); }
inline std::optional<PlacementOutcome> placement_outcome_from_string(const std::string& s) {
    for (PlacementOutcome o : {PlacementOutcome::served, PlacementOutcome::none_moved, PlacementOutcome::several_moved,
                               PlacementOutcome::unreadable, PlacementOutcome::counter_reset})
        if (s == to_string(o)) return o;
    return std::nullopt;
}

struct NumberList {
    static json write(const std::vector<double>& v) {
        json out = json::array();
        for (double x : v) out.push_back(Number::write(x));
        return out;
    }
    static void read(std::vector<double>& v, const JsonField& j) {
        v.clear();
        for (const auto& e : j.elements()) v.push_back(e.number());
    }
};
struct StringList {
    static json write(const std::vector<std::string>& v) { return v; }
    static void read(std::vector<std::string>& v, const JsonField& j) {
        v.clear();
        for (const auto& e : j.elements()) v.push_back(e.string());
    }
};

// A later addition written only when it differs from its default (an unchecked trial's reuse, a
// run without a baseline), so files without it stay as they were.
template <class T>
Field<T> omitted_at_default(Field<T> f) {
    f.optional = true;
    return f;
}

// ---- The schema ----

// A fleet: which replica served a request (placement.hpp), beside the request's own fields.
inline const std::vector<Field<Placement>>& placement_fields() {
    static const std::vector<Field<Placement>> f = {
        member<Named<PlacementOutcome, placement_outcome_name, placement_outcome_from_string>>("outcome",
                                                                                               &Placement::outcome),
        member<Count>("replica", &Placement::replica),
        member<List<Integer, int>>("replicas", &Placement::replicas),
        member<Number>("queried_tokens", &Placement::queried_tokens),
        member<Number>("hit_tokens", &Placement::hit_tokens),
    };
    return f;
}
using PlacementCodec = Nullable<Object<Placement, placement_fields>, Placement>;

inline const std::vector<Field<RequestStamps>>& stamps_fields() {
    static const std::vector<Field<RequestStamps>> f = {
        member<OptionalNumber>("headers_ms", &RequestStamps::headers_ms),
        member<OptionalNumber>("first_byte_ms", &RequestStamps::first_byte_ms),
        member<OptionalNumber>("first_event_ms", &RequestStamps::first_event_ms),
        member<OptionalNumber>("first_token_ms", &RequestStamps::first_token_ms),
        member<OptionalNumber>("last_token_ms", &RequestStamps::last_token_ms),
        member<OptionalNumber>("done_ms", &RequestStamps::done_ms),
    };
    return f;
}
using Stamps = Object<RequestStamps, stamps_fields>;

inline const std::vector<Field<Usage>>& usage_fields() {
    static const std::vector<Field<Usage>> f = {
        member<Count>("prompt_tokens", &Usage::prompt_tokens),
        member<Count>("completion_tokens", &Usage::completion_tokens),
        member<Count>("cached_tokens", &Usage::cached_tokens),
    };
    return f;
}

// The warm request of a trial, nested under the trial as "warm".
inline const std::vector<Field<Trial>>& warm_fields() {
    static const std::vector<Field<Trial>> f = {
        field<Stamps, Trial>("stamps", [](Trial& t) -> RequestStamps& { return t.warm.stamps; }),
        field<Object<Usage, usage_fields>, Trial>("usage", [](Trial& t) -> Usage& { return t.warm.usage; }),
        field<OptionalNumber, Trial>("engine_ttft_ms",
                                     [](Trial& t) -> std::optional<double>& { return t.warm.engine_ttft_ms; }),
        member<Integer>("prompt_tokens_expected", &Trial::warm_prompt_tokens_expected),
        optional_field<PlacementCodec, Trial>("placement",
                                              [](Trial& t) -> std::optional<Placement>& { return t.warm.placement; }),
    };
    return f;
}

// Expected vs reported reuse of the measured request (reuse_check.hpp).
inline const std::vector<Field<TrialReuse>>& reuse_fields() {
    static const std::vector<Field<TrialReuse>> f = {
        member<Boolean>("checked", &TrialReuse::checked),
        member<Integer>("expected_cached_tokens", &TrialReuse::expected),
        member<Integer>("shared_tokens", &TrialReuse::shared),
        member<Integer>("allowed_cached_tokens", &TrialReuse::allowed),
        member<Integer>("template_shared_tokens", &TrialReuse::template_shared),
        member<String>("reported", &TrialReuse::reported_class),
        member<Integer>("divergence_at", &TrialReuse::divergence_at),
        member<String>("divergence", &TrialReuse::divergence),
        omitted_at_default(member<Boolean>("rendering_varies", &TrialReuse::rendering_varies)),
    };
    return f;
}

inline const std::vector<Field<BaselineRecord>>& baseline_fields() {
    static const std::vector<Field<BaselineRecord>> f = {
        member<String>("path", &BaselineRecord::path),
        member<String>("git_revision", &BaselineRecord::revision),
        member<String>("timestamp", &BaselineRecord::timestamp),
        member<OutcomeName>("outcome", &BaselineRecord::outcome),
        member<String>("reason", &BaselineRecord::reason),
        member<String>("fix", &BaselineRecord::fix),
        member<String>("method", &BaselineRecord::method),
        member<Number>("regression_pct", &BaselineRecord::regression_pct),
        member<Number>("confidence", &BaselineRecord::confidence),
        member<Number>("baseline_ratio", &BaselineRecord::baseline_ratio),
        member<Number>("current_ratio", &BaselineRecord::current_ratio),
        member<Number>("ratio_of_ratios", &BaselineRecord::ratio_estimate),
        member<Number>("ratio_of_ratios_low", &BaselineRecord::ratio_low),
        member<Number>("ratio_of_ratios_high", &BaselineRecord::ratio_high),
        member<Number>("ratio_of_ratios_bar", &BaselineRecord::ratio_bar),
        member<Number>("hit_ttft_ratio", &BaselineRecord::hit_estimate),
        member<Number>("hit_ttft_ratio_low", &BaselineRecord::hit_low),
        member<Number>("hit_ttft_ratio_high", &BaselineRecord::hit_high),
        member<Number>("hit_ttft_ratio_bar", &BaselineRecord::hit_bar),
        member<StringList>("accepted_differences", &BaselineRecord::differences),
        member<NumberList>("baseline_pair_ratios", &BaselineRecord::baseline_pair_ratios),
    };
    return f;
}

// The seed's per-trial fields (the measured request's usage flat, as the seed had it), then kvgate's.
inline const std::vector<Field<Trial>>& trial_fields() {
    static const std::vector<Field<Trial>> f = {
        member<Integer>("index", &Trial::index),
        member<Boolean>("warmup", &Trial::warmup),
        member<Number>("ttft_ms", &Trial::ttft_ms),
        member<Number>("total_time_ms", &Trial::total_time_ms),
        member<Number>("throughput", &Trial::throughput),
        field<Count, Trial>("prompt_tokens", [](Trial& t) -> int& { return t.measured.usage.prompt_tokens; }),
        field<Count, Trial>("completion_tokens", [](Trial& t) -> int& { return t.measured.usage.completion_tokens; }),
        field<Count, Trial>("cached_tokens", [](Trial& t) -> int& { return t.measured.usage.cached_tokens; }),
        member<Integer>("prompt_tokens_expected", &Trial::prompt_tokens_expected),
        field<OptionalNumber, Trial>("engine_ttft_ms",
                                     [](Trial& t) -> std::optional<double>& { return t.measured.engine_ttft_ms; }),
        field<Stamps, Trial>("stamps", [](Trial& t) -> RequestStamps& { return t.measured.stamps; }),
        field<Object<Trial, warm_fields>, Trial>("warm", [](Trial& t) -> Trial& { return t; }),
        optional_field<PlacementCodec, Trial>("placement",
                                              [](Trial& t) -> std::optional<Placement>& { return t.measured.placement; }),
        omitted_at_default(member<Object<TrialReuse, reuse_fields>>("reuse", &Trial::reuse)),
    };
    return f;
}

inline const std::vector<Field<ArmStats>>& stats_fields() {
    static const std::vector<Field<ArmStats>> f = {
        member<Integer>("n", &ArmStats::n),
        member<Number>("ttft_mean", &ArmStats::ttft_mean),
        member<Number>("ttft_median", &ArmStats::ttft_median),
        member<Number>("ttft_stdev", &ArmStats::ttft_stdev),
        member<Number>("ttft_p90", &ArmStats::ttft_p90),
        member<Number>("throughput_mean", &ArmStats::throughput_mean),
        member<Number>("throughput_median", &ArmStats::throughput_median),
        member<Number>("throughput_stdev", &ArmStats::throughput_stdev),
        member<Number>("throughput_p90", &ArmStats::throughput_p90),
        member<Integer>("prompt_tokens", &ArmStats::prompt_tokens),
        member<MedianOrNull>("cached_tokens_median", &ArmStats::cached_tokens_median),
    };
    return f;
}

// The seed's config keys, read from and into the run's settings.
inline const std::vector<Field<PhaseResult>>& config_fields() {
    static const std::vector<Field<PhaseResult>> f = {
        field<Integer, PhaseResult>("context_size_a", [](PhaseResult& r) -> int& { return r.settings.hit_miss.context_a_tokens; }),
        field<Integer, PhaseResult>("context_size_b", [](PhaseResult& r) -> int& { return r.settings.hit_miss.context_b_tokens; }),
        field<Integer, PhaseResult>("max_output_tokens",
                                    [](PhaseResult& r) -> int& { return r.settings.hit_miss.max_output_tokens; }),
        field<Integer, PhaseResult>("num_trials", [](PhaseResult& r) -> int& { return r.settings.hit_miss.trials; }),
        field<Integer, PhaseResult>("warmup_trials", [](PhaseResult& r) -> int& { return r.settings.hit_miss.warmup; }),
        field<Integer, PhaseResult>("query_size", [](PhaseResult& r) -> int& { return r.settings.hit_miss.query_tokens; }),
        field<Integer, PhaseResult>("settle_ms", [](PhaseResult& r) -> int& { return r.settings.hit_miss.settle_ms; }),
        field<Unsigned, PhaseResult>("seed", [](PhaseResult& r) -> std::uint64_t& { return r.settings.seed; }),
        member<Boolean>("sizes_estimated", &PhaseResult::sizes_estimated),
        // Absent from files written before KVGATE_TTFT: those compared the client's TTFT.
        added_later(field<Named<TtftSource, to_string, ttft_source_from_string>, PhaseResult>(
            "ttft", [](PhaseResult& r) -> TtftSource& { return r.settings.gate.ttft; })),
        // Absent from files written before the sequential decision: those ran num_trials rounds, no more
        // (phase_result_from_json says so).
        added_later(field<Integer, PhaseResult>("max_trials", [](PhaseResult& r) -> int& { return r.settings.hit_miss.max_trials; })),
        added_later(field<Number, PhaseResult>("time_budget_s",
                                               [](PhaseResult& r) -> double& { return r.settings.hit_miss.time_budget_s; })),
    };
    return f;
}

inline const std::vector<Field<EngineInfo>>& engine_fields() {
    static const std::vector<Field<EngineInfo>> f = {
        member<String>("name", &EngineInfo::name),
        member<String>("version", &EngineInfo::version),
        member<String>("url", &EngineInfo::url),
        member<String>("endpoint", &EngineInfo::endpoint),
        member<PositiveOrNull>("block_size", &EngineInfo::block_size),
        member<Boolean>("prefix_caching", &EngineInfo::prefix_caching),
        optional_field<List<String, std::string>, EngineInfo>(
            "replica_urls", [](EngineInfo& e) -> std::vector<std::string>& { return e.replica_urls; }),
        optional_field<StringOrNull, EngineInfo>("router_policy", [](EngineInfo& e) -> std::string& { return e.router_policy; }),
        added_later(field<Count, EngineInfo>("template_prefix_tokens",
                                             [](EngineInfo& e) -> int& { return e.template_shape.prefix_tokens; })),
        added_later(field<Count, EngineInfo>("template_suffix_tokens",
                                             [](EngineInfo& e) -> int& { return e.template_shape.suffix_tokens; })),
    };
    return f;
}

inline const std::vector<Field<CounterDeltas>>& prometheus_fields();
using ReplicaDeltas = Object<CounterDeltas, prometheus_fields>;

// A fleet's sum, with each replica's own deltas under per_replica (in replica_urls order).
inline const std::vector<Field<CounterDeltas>>& prometheus_fields() {
    static const std::vector<Field<CounterDeltas>> f = {
        member<Boolean>("available", &CounterDeltas::available),
        member<Number>("queries_delta", &CounterDeltas::queries),
        member<Number>("hits_delta", &CounterDeltas::hits),
        omitted_at_default(member<String>("unavailable_because", &CounterDeltas::unavailable_because)),
        optional_field<List<ReplicaDeltas, CounterDeltas>, CounterDeltas>(
            "per_replica", [](CounterDeltas& c) -> std::vector<CounterDeltas>& { return c.per_replica; }),
    };
    return f;
}

inline const std::vector<Field<CounterDeltas>>& cache_evidence_fields() {
    static const std::vector<Field<CounterDeltas>> f = {
        field<Object<CounterDeltas, prometheus_fields>, CounterDeltas>("prometheus",
                                                                       [](CounterDeltas& c) -> CounterDeltas& { return c; }),
    };
    return f;
}

inline const std::vector<Field<Contrast>>& contrast_fields() {
    static const std::vector<Field<Contrast>> f = {
        member<OutcomeName>("outcome", &Contrast::outcome),
        member<Number>("ratio", &Contrast::ratio),
        member<Number>("ratio_low", &Contrast::low),
        member<Number>("ratio_high", &Contrast::high),
        member<Integer>("pairs", &Contrast::pairs),
        member<Number>("look_confidence", &Contrast::look_confidence),
    };
    return f;
}

inline const std::vector<Field<Verdict>>& verdict_fields() {
    static const std::vector<Field<Verdict>> f = {
        member<OutcomeName>("outcome", &Verdict::outcome),
        member<Number>("threshold_pct", &Verdict::threshold_pct),
        member<Number>("confidence", &Verdict::confidence),
        member<Number>("ratio", &Verdict::ratio),
        member<Number>("ratio_low", &Verdict::ratio_low),
        member<Number>("ratio_high", &Verdict::ratio_high),
        member<String>("method", &Verdict::method),
        member<String>("reason", &Verdict::reason),
        member<String>("fix", &Verdict::fix),
        member<String>("evidence", &Verdict::evidence),
        // Absent from files written before the cold arm (they decided on miss/hit alone), and where unknown.
        omitted_at_default(member<Object<Contrast, contrast_fields>>("invalidation", &Verdict::invalidation)),
        omitted_at_default(member<Object<Contrast, contrast_fields>>("cache", &Verdict::cache)),
        omitted_at_default(member<Integer>("rounds", &Verdict::rounds)),
        omitted_at_default(member<String>("rounds_reason", &Verdict::rounds_reason)),
        omitted_at_default(member<Number>("saving_per_cached_token_ms", &Verdict::saving_per_cached_token_ms)),
        omitted_at_default(member<Number>("per_prompt_token_ms", &Verdict::per_prompt_token_ms)),
        omitted_at_default(member<String>("physics", &Verdict::physics)),
    };
    return f;
}

inline const std::vector<Field<Fault>>& fault_fields() {
    static const std::vector<Field<Fault>> f = {
        member<Named<FaultKind, fault_kind_name, fault_kind_from_string>>("kind", &Fault::kind),
        member<Integer>("trial", &Fault::trial),
        member<Named<FaultRequest, fault_request_name, fault_request_from_string>>("request", &Fault::request),
        member<Named<FaultStage, fault_stage_name, fault_stage_from_string>>("stage", &Fault::stage),
        member<String>("message", &Fault::message),
    };
    return f;
}

// The seed groups trials by arm ("cache_hit": {"trials": [...], "stats": {...}}); `index` keeps the
// run order. The cold arm ("cache_cold") is kvgate's extension, absent from files written before it. `trials` holds the counted trials only, as a reader of the seed's format counts them;
// the warm-up trials are kept beside them in `warmup_trials` (files written before it had them in
// `trials`, flagged `warmup`: read either way).
inline Field<PhaseResult> arm_field(Arm arm) {
    Field<PhaseResult> f = {to_string(arm),
            [arm](const PhaseResult& r) {
                json trials = json::array(), warmups = json::array();
                for (const auto& t : r.trials)
                    if (t.arm == arm) (t.warmup ? warmups : trials).push_back(write_object(trial_fields(), t));
                return json{{"trials", std::move(trials)},
                            {"warmup_trials", std::move(warmups)},
                            {"stats", write_object(stats_fields(), r.stats(arm))}};
            },
            [arm](PhaseResult& r, const JsonField& j) {
                auto read_trials = [&](const JsonField& list, bool warmups) {
                    for (const auto& element : list.elements()) {
                        Trial t;
                        t.arm = arm;
                        read_object(trial_fields(), t, element);
                        if (warmups && !t.warmup) element["warmup"].fail("is false in warmup_trials");
                        r.trials.push_back(std::move(t));
                    }
                };
                read_trials(j["trials"], false);
                if (j.has("warmup_trials")) read_trials(j["warmup_trials"], true);
                read_object(stats_fields(), r.stats(arm), j["stats"]);
            }};
    f.added_later = f.optional = arm == Arm::cold;  // left out where no cold trial was measured
    return f;
}

// The seed's `phase` value; on reading, it must agree with the phase the file was read for
// (a descriptor set beforehand), or it names one.
inline Field<PhaseResult> phase_field() {
    return {"phase", [](const PhaseResult& r) { return json(r.phase.seed_key); },
            [](PhaseResult& r, const JsonField& j) {
                const std::string key = j.string();
                if (!r.phase.name.empty()) {
                    if (key != r.phase.seed_key)
                        j.fail("is '" + key + "', but this file holds " + r.phase.name + "'s results ('" +
                               r.phase.seed_key + "')");
                    return;
                }
                for (const auto& e : experiments())
                    for (const auto& p : e.phases)
                        if (p.seed_key == key) {
                            r.phase = p;
                            return;
                        }
                j.fail("is '" + key + "', which is no phase this kvgate knows");
            }};
}

inline Field<PhaseResult> kvgate_field() {
    return {"kvgate", [](const PhaseResult&) { return json{{"version", KVGATE_VERSION}, {"schema", results_schema_version}}; },
            [](PhaseResult&, const JsonField& j) {
                const int schema = j["schema"].integer();
                if (schema > results_schema_version)
                    throw ReportError(j.source() + ": kvgate.schema is " + std::to_string(schema) +
                                      " but this kvgate reads up to " + std::to_string(results_schema_version) +
                                      " — update kvgate to read this file");
                j["version"].string();
            }};
}

inline const std::vector<Field<PhaseResult>>& result_fields() {
    static const std::vector<Field<PhaseResult>> f = {
        kvgate_field(),  // first: a newer schema is reported as such, not as some missing key
        phase_field(),
        field<String, PhaseResult>("model", [](PhaseResult& r) -> std::string& { return r.settings.target.model; }),
        member<String>("timestamp", &PhaseResult::timestamp),
        field<Object<PhaseResult, config_fields>, PhaseResult>("config", [](PhaseResult& r) -> PhaseResult& { return r; }),
        arm_field(Arm::hit),
        arm_field(Arm::miss),
        arm_field(Arm::cold),
        member<Number>("ttft_degradation_pct", &PhaseResult::ttft_degradation_pct),
        omitted_at_default(member<String>("block_rounding", &PhaseResult::block_rounding)),
        member<String>("git_revision", &PhaseResult::git_revision),
        member<Object<EngineInfo, engine_fields>>("engine", &PhaseResult::engine),
        member<Object<CounterDeltas, cache_evidence_fields>>("cache_evidence", &PhaseResult::counters),
        member<Object<Verdict, verdict_fields>>("verdict", &PhaseResult::verdict),
        omitted_at_default(member<Nullable<Object<BaselineRecord, baseline_fields>, BaselineRecord>>("baseline",
                                                                                             &PhaseResult::baseline)),
        member<Nullable<Object<Fault, fault_fields>, Fault>>("fault", &PhaseResult::fault),
        member<Number>("wall_time_s", &PhaseResult::wall_time_s),
        member<Boolean>("complete", &PhaseResult::complete),
        omitted_at_default(member<Nullable<String, std::string>>("early_stop", &PhaseResult::early_stop)),
    };
    return f;
}

}  // namespace results_json

inline nlohmann::json to_json(const PhaseResult& r) { return results_json::write_object(results_json::result_fields(), r); }

// Validates while it reads: any missing or mistyped key throws a ReportError naming `source_name`,
// the key's JSON path and what to do. `phase`: the phase the document must hold; nullptr: the one
// its `phase` key names.
inline PhaseResult phase_result_from_json(const nlohmann::json& doc, const std::string& source_name,
                                          const PhaseDescriptor* phase = nullptr) {
    results_json::JsonField root(doc, "", source_name);
    if (!doc.is_object()) root.fail("is " + std::string(doc.type_name()) + ", expected an object");
    PhaseResult r;
    if (phase) r.phase = *phase;
    results_json::read_object(results_json::result_fields(), r, root);
    if (!root["config"].has("max_trials")) {
        r.settings.hit_miss.max_trials = r.settings.hit_miss.trials;
        r.settings.hit_miss.time_budget_s = 0;
    }
    // The bar and the confidence the run was decided at are the verdict's (decide() records them):
    // a file read back keeps them rather than taking the defaults.
    if (r.verdict.threshold_pct > 0) r.settings.gate.threshold_pct = r.verdict.threshold_pct;
    if (r.verdict.confidence > 0) r.settings.gate.confidence = r.verdict.confidence;
    std::stable_sort(r.trials.begin(), r.trials.end(), [](const Trial& a, const Trial& b) { return a.index < b.index; });
    return r;
}

// The descriptor whose results file this is, by its name; nullptr when no phase writes that name.
inline const PhaseDescriptor* phase_of_results_file(const std::filesystem::path& path) {
    for (const auto& e : experiments())
        for (const auto& p : e.phases)
            if (p.results_file == path.filename().string()) return &p;
    return nullptr;
}

inline PhaseResult read_results_file(const std::filesystem::path& path, const PhaseDescriptor* phase = nullptr) {
    const std::string source = path.string();
    if (!phase) phase = phase_of_results_file(path);
    std::string content = report_detail::read_whole_file(path);
    if (content.find_first_not_of(" \t\r\n") == std::string::npos)
        throw ReportError(source + ": is empty — the run that wrote it was interrupted; re-run the phase");
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(content);
    } catch (const nlohmann::json::parse_error& e) {
        // nlohmann counts bytes from 1; an error past the last byte means the input simply stopped.
        if (e.byte > content.size())
            throw ReportError(source + ": truncated — the JSON stops after " + std::to_string(content.size()) +
                              " bytes, before the document is complete (was the run that wrote it interrupted?); "
                              "re-run the phase (" +
                              e.what() + ")");
        throw ReportError(source + ": not valid JSON at byte " + std::to_string(e.byte) + " of " +
                          std::to_string(content.size()) +
                          " — the file is corrupted or not a kvgate results file; re-run the phase (" + e.what() +
                          ")");
    }
    return phase_result_from_json(doc, source, phase);
}

inline std::filesystem::path results_path(const std::filesystem::path& dir, const PhaseDescriptor& phase) {
    return dir / phase.results_file;
}

inline void write_results(const PhaseResult& result, const std::filesystem::path& path) {
    // Replace, not throw, on invalid UTF-8: every text is made valid where it is made (fault
    // messages), and no stray byte elsewhere may cost the run its results file.
    write_file_atomically(path, to_json(result).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

}  // namespace kvgate
