// A PhaseResult as the seed experiment's results_phaseN.json (plus kvgate's extensions), back again,
// and the file plumbing every reporter shares: atomic writes and staged, all-or-nothing outputs.
// Unknown values are JSON null: absent stamps, usage the server did not report (-1 in the record),
// block size 0, and non-finite numbers (JSON has no NaN).
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "kvgate/records.hpp"

// The build may pass the project version; the fallback keeps the header usable on its own.
#ifndef KVGATE_VERSION
#define KVGATE_VERSION "0.1.0"
#endif

namespace kvgate {

// Every reporting failure: the message names the file, what is wrong and what to do.
struct ReportError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Bumped when a reader of the old layout would misread the new one.
inline constexpr int results_schema_version = 1;

namespace report_detail {

inline std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

inline std::string format_fixed(double v, int decimals) {
    if (!std::isfinite(v)) return "n/a";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

inline std::string signed_pct(double v) {
    return std::isfinite(v) ? (v >= 0 ? "+" : "") + format_fixed(v, 1) + "%" : "n/a";
}

// A name in the target's own directory, so the final rename never crosses file systems.
// Hidden and unique per process and call, so concurrent writers never share one.
inline std::filesystem::path temp_path_beside(const std::filesystem::path& target) {
    static std::atomic<unsigned> counter{0};
    return target.parent_path() / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                                   std::to_string(counter++));
}

// Creates `temp` (which must not exist) holding `content`; errors name the `target` it stands for.
inline void write_new_file(const std::filesystem::path& temp, const std::filesystem::path& target,
                           const std::string& content) {
    auto failure = [&](const char* step, int err) {
        return ReportError(target.string() + ": cannot " + step + " " + temp.filename().string() + ": " +
                           errno_text(err) + "; the existing file, if any, is untouched");
    };
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) throw failure("create its temporary file", errno);
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            ::unlink(temp.c_str());
            throw failure("write its temporary file", err);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0) {
        int err = errno;
        ::unlink(temp.c_str());
        throw failure("write its temporary file", err);
    }
}

// Written files are on disk before they take a final name (also those gnuplot wrote).
inline void fsync_path(const std::filesystem::path& path, int flags) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) throw ReportError(path.string() + ": cannot open to flush: " + errno_text(errno));
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0 && err != EINVAL) throw ReportError(path.string() + ": cannot flush to disk: " + errno_text(err));
}

}  // namespace report_detail

// Files written under temporary names beside their targets, renamed into place only by commit().
// Whatever fails before commit (a write, gnuplot) leaves every existing target untouched: the
// destructor removes the temporaries.
class StagedFiles {
public:
    StagedFiles() = default;
    StagedFiles(const StagedFiles&) = delete;
    StagedFiles& operator=(const StagedFiles&) = delete;
    ~StagedFiles() {
        for (const auto& f : files_)
            if (!f.committed) ::unlink(f.temp.c_str());
    }

    // Reserves a temporary name for `target`; the caller (or a program it runs) creates the file.
    std::filesystem::path stage(const std::filesystem::path& target) {
        files_.push_back({report_detail::temp_path_beside(target), target, false});
        return files_.back().temp;
    }

    // Returns the temporary name the content went to.
    std::filesystem::path write(const std::filesystem::path& target, const std::string& content) {
        std::filesystem::path temp = stage(target);
        report_detail::write_new_file(temp, target, content);
        return temp;
    }

    void commit() {
        for (const auto& f : files_) report_detail::fsync_path(f.temp, O_RDONLY);
        std::set<std::filesystem::path> dirs;
        for (auto& f : files_) {
            if (std::rename(f.temp.c_str(), f.target.c_str()) != 0) {
                int err = errno;
                throw ReportError(f.target.string() + ": cannot replace: " + report_detail::errno_text(err) +
                                  "; the previous file, if any, is untouched");
            }
            f.committed = true;
            dirs.insert(f.target.parent_path().empty() ? std::filesystem::path(".") : f.target.parent_path());
        }
        // The renames themselves are durable only once their directories are flushed.
        for (const auto& dir : dirs) report_detail::fsync_path(dir, O_RDONLY | O_DIRECTORY);
    }

private:
    struct File {
        std::filesystem::path temp, target;
        bool committed;
    };
    std::vector<File> files_;
};

// Replaces `path` with `content` or, on any failure, leaves it as it was and throws naming the path.
inline void write_file_atomically(const std::filesystem::path& path, const std::string& content) {
    StagedFiles staged;
    staged.write(path, content);
    staged.commit();
}

namespace report_detail {

inline nlohmann::json number_or_null(double v) {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

inline nlohmann::json optional_number(const std::optional<double>& v) {
    return v ? number_or_null(*v) : nlohmann::json(nullptr);
}

inline nlohmann::json count_or_null(int v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); }

inline nlohmann::json stamps_json(const RequestStamps& s) {
    return {{"headers_ms", optional_number(s.headers_ms)},
            {"first_byte_ms", optional_number(s.first_byte_ms)},
            {"first_event_ms", optional_number(s.first_event_ms)},
            {"first_token_ms", optional_number(s.first_token_ms)},
            {"last_token_ms", optional_number(s.last_token_ms)},
            {"done_ms", optional_number(s.done_ms)}};
}

inline nlohmann::json usage_json(const Usage& u) {
    return {{"prompt_tokens", count_or_null(u.prompt_tokens)},
            {"completion_tokens", count_or_null(u.completion_tokens)},
            {"cached_tokens", count_or_null(u.cached_tokens)}};
}

inline nlohmann::json trial_json(const Trial& t) {
    return {{"index", t.index},
            {"warmup", t.warmup},
            {"ttft_ms", number_or_null(t.ttft_ms)},
            {"total_time_ms", number_or_null(t.total_time_ms)},
            {"throughput", number_or_null(t.throughput)},
            {"prompt_tokens", count_or_null(t.measured.usage.prompt_tokens)},
            {"completion_tokens", count_or_null(t.measured.usage.completion_tokens)},
            {"cached_tokens", count_or_null(t.measured.usage.cached_tokens)},
            {"prompt_tokens_expected", t.prompt_tokens_expected},
            {"engine_ttft_ms", optional_number(t.measured.engine_ttft_ms)},
            {"stamps", stamps_json(t.measured.stamps)},
            {"warm",
             {{"stamps", stamps_json(t.warm.stamps)},
              {"usage", usage_json(t.warm.usage)},
              {"engine_ttft_ms", optional_number(t.warm.engine_ttft_ms)},
              {"prompt_tokens_expected", t.warm_prompt_tokens_expected}}}};
}

inline nlohmann::json stats_json(const ArmStats& s) {
    return {{"n", s.n},
            {"ttft_mean", number_or_null(s.ttft_mean)},
            {"ttft_median", number_or_null(s.ttft_median)},
            {"ttft_stdev", number_or_null(s.ttft_stdev)},
            {"ttft_p90", number_or_null(s.ttft_p90)},
            {"throughput_mean", number_or_null(s.throughput_mean)},
            {"throughput_median", number_or_null(s.throughput_median)},
            {"throughput_stdev", number_or_null(s.throughput_stdev)},
            {"throughput_p90", number_or_null(s.throughput_p90)},
            {"prompt_tokens", s.prompt_tokens},
            {"cached_tokens_median", s.cached_tokens_median < 0 ? nlohmann::json(nullptr)
                                                                : number_or_null(s.cached_tokens_median)}};
}

inline nlohmann::json arm_json(const PhaseResult& r, Arm arm) {
    nlohmann::json trials = nlohmann::json::array();
    for (const auto& t : r.trials)
        if (t.arm == arm) trials.push_back(trial_json(t));
    return {{"trials", std::move(trials)}, {"stats", stats_json(arm == Arm::hit ? r.hit_stats : r.miss_stats)}};
}

}  // namespace report_detail

inline nlohmann::json to_json(const PhaseResult& r) {
    const PhaseConfig& c = r.config;
    const EngineInfo& e = r.engine;
    const Verdict& v = r.verdict;
    nlohmann::json fault = nullptr;
    if (r.fault)
        fault = {{"kind", r.fault->kind},
                 {"trial", r.fault->trial},
                 {"request", r.fault->request},
                 {"stage", r.fault->stage},
                 {"message", r.fault->message}};
    return {{"phase", r.phase},
            {"model", r.model},
            {"timestamp", r.timestamp},
            {"config",
             {{"context_size_a", c.context_size_a},
              {"context_size_b", c.context_size_b},
              {"max_output_tokens", c.max_output_tokens},
              {"num_trials", c.num_trials},
              {"warmup_trials", c.warmup_trials},
              {"query_size", c.query_size},
              {"settle_ms", c.settle_ms},
              {"seed", c.seed},
              {"sizes_estimated", c.sizes_estimated}}},
            {"cache_hit", report_detail::arm_json(r, Arm::hit)},
            {"cache_miss", report_detail::arm_json(r, Arm::miss)},
            {"ttft_degradation_pct", report_detail::number_or_null(r.ttft_degradation_pct)},
            {"kvgate", {{"version", KVGATE_VERSION}, {"schema", results_schema_version}}},
            {"git_revision", r.git_revision},
            {"engine",
             {{"name", e.name},
              {"version", e.version},
              {"url", e.url},
              {"endpoint", e.endpoint},
              {"block_size", e.block_size > 0 ? nlohmann::json(e.block_size) : nlohmann::json(nullptr)},
              {"prefix_caching", e.prefix_caching}}},
            {"cache_evidence",
             {{"prometheus",
               {{"available", r.counters.available},
                {"queries_delta", report_detail::number_or_null(r.counters.queries)},
                {"hits_delta", report_detail::number_or_null(r.counters.hits)}}}}},
            {"verdict",
             {{"outcome", to_string(v.outcome)},
              {"threshold_pct", report_detail::number_or_null(v.threshold_pct)},
              {"confidence", report_detail::number_or_null(v.confidence)},
              {"ratio", report_detail::number_or_null(v.ratio)},
              {"ratio_low", report_detail::number_or_null(v.ratio_low)},
              {"ratio_high", report_detail::number_or_null(v.ratio_high)},
              {"method", v.method},
              {"reason", v.reason},
              {"fix", v.fix},
              {"evidence", v.evidence}}},
            {"fault", std::move(fault)},
            {"wall_time_s", report_detail::number_or_null(r.wall_time_s)},
            {"complete", r.complete}};
}

namespace report_detail {

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

inline RequestStamps stamps_from(const JsonField& j) {
    RequestStamps s;
    s.headers_ms = j["headers_ms"].optional_number();
    s.first_byte_ms = j["first_byte_ms"].optional_number();
    s.first_event_ms = j["first_event_ms"].optional_number();
    s.first_token_ms = j["first_token_ms"].optional_number();
    s.last_token_ms = j["last_token_ms"].optional_number();
    s.done_ms = j["done_ms"].optional_number();
    return s;
}

inline Usage usage_from(const JsonField& prompt, const JsonField& completion, const JsonField& cached) {
    return {prompt.integer_or(-1), completion.integer_or(-1), cached.integer_or(-1)};
}

inline Trial trial_from(const JsonField& j, Arm arm) {
    Trial t;
    t.arm = arm;
    t.index = j["index"].integer();
    t.warmup = j["warmup"].boolean();
    t.ttft_ms = j["ttft_ms"].number();
    t.total_time_ms = j["total_time_ms"].number();
    t.throughput = j["throughput"].number();
    t.measured.usage = usage_from(j["prompt_tokens"], j["completion_tokens"], j["cached_tokens"]);
    t.prompt_tokens_expected = j["prompt_tokens_expected"].integer();
    t.measured.engine_ttft_ms = j["engine_ttft_ms"].optional_number();
    t.measured.stamps = stamps_from(j["stamps"]);
    JsonField warm = j["warm"];
    JsonField usage = warm["usage"];
    t.warm.stamps = stamps_from(warm["stamps"]);
    t.warm.usage = usage_from(usage["prompt_tokens"], usage["completion_tokens"], usage["cached_tokens"]);
    t.warm.engine_ttft_ms = warm["engine_ttft_ms"].optional_number();
    t.warm_prompt_tokens_expected = warm["prompt_tokens_expected"].integer();
    return t;
}

inline ArmStats stats_from(const JsonField& j) {
    ArmStats s;
    s.n = j["n"].integer();
    s.ttft_mean = j["ttft_mean"].number();
    s.ttft_median = j["ttft_median"].number();
    s.ttft_stdev = j["ttft_stdev"].number();
    s.ttft_p90 = j["ttft_p90"].number();
    s.throughput_mean = j["throughput_mean"].number();
    s.throughput_median = j["throughput_median"].number();
    s.throughput_stdev = j["throughput_stdev"].number();
    s.throughput_p90 = j["throughput_p90"].number();
    s.prompt_tokens = j["prompt_tokens"].integer();
    JsonField cached = j["cached_tokens_median"];
    s.cached_tokens_median = cached.is_null() ? -1 : cached.number();
    return s;
}

inline Outcome outcome_from(const JsonField& j) {
    std::string name = j.string();
    for (Outcome o : {Outcome::pass, Outcome::fail, Outcome::indeterminate, Outcome::unverified, Outcome::error})
        if (name == to_string(o)) return o;
    j.fail("is '" + name + "', expected one of pass, fail, indeterminate, unverified, error");
}

}  // namespace report_detail

// Validates while it reads: any missing or mistyped key throws a ReportError naming
// `source_name`, the key's JSON path and what to do.
inline PhaseResult phase_result_from_json(const nlohmann::json& doc, const std::string& source_name) {
    report_detail::JsonField root(doc, "", source_name);
    if (!doc.is_object()) root.fail("is " + std::string(doc.type_name()) + ", expected an object");
    int schema = root["kvgate"]["schema"].integer();
    if (schema > results_schema_version)
        throw ReportError(source_name + ": kvgate.schema is " + std::to_string(schema) +
                          " but this kvgate reads up to " + std::to_string(results_schema_version) +
                          " — update kvgate to read this file");

    PhaseResult r;
    r.phase = root["phase"].string();
    r.model = root["model"].string();
    r.timestamp = root["timestamp"].string();
    r.git_revision = root["git_revision"].string();

    report_detail::JsonField config = root["config"];
    r.config.context_size_a = config["context_size_a"].integer();
    r.config.context_size_b = config["context_size_b"].integer();
    r.config.max_output_tokens = config["max_output_tokens"].integer();
    r.config.num_trials = config["num_trials"].integer();
    r.config.warmup_trials = config["warmup_trials"].integer();
    r.config.query_size = config["query_size"].integer();
    r.config.settle_ms = config["settle_ms"].integer();
    r.config.seed = config["seed"].unsigned_integer();
    r.config.sizes_estimated = config["sizes_estimated"].boolean();

    for (Arm arm : {Arm::hit, Arm::miss}) {
        report_detail::JsonField arm_doc = root[to_string(arm)];
        for (const auto& trial : arm_doc["trials"].elements())
            r.trials.push_back(report_detail::trial_from(trial, arm));
        (arm == Arm::hit ? r.hit_stats : r.miss_stats) = report_detail::stats_from(arm_doc["stats"]);
    }
    // The file groups trials by arm; `index` restores the run order.
    std::stable_sort(r.trials.begin(), r.trials.end(),
                     [](const Trial& a, const Trial& b) { return a.index < b.index; });
    r.ttft_degradation_pct = root["ttft_degradation_pct"].number();

    report_detail::JsonField engine = root["engine"];
    r.engine.name = engine["name"].string();
    r.engine.version = engine["version"].string();
    r.engine.url = engine["url"].string();
    r.engine.endpoint = engine["endpoint"].string();
    r.engine.block_size = engine["block_size"].integer_or(0);
    r.engine.prefix_caching = engine["prefix_caching"].boolean();

    report_detail::JsonField prometheus = root["cache_evidence"]["prometheus"];
    r.counters.available = prometheus["available"].boolean();
    r.counters.queries = prometheus["queries_delta"].number();
    r.counters.hits = prometheus["hits_delta"].number();

    report_detail::JsonField verdict = root["verdict"];
    r.verdict.outcome = report_detail::outcome_from(verdict["outcome"]);
    r.verdict.threshold_pct = verdict["threshold_pct"].number();
    r.verdict.confidence = verdict["confidence"].number();
    r.verdict.ratio = verdict["ratio"].number();
    r.verdict.ratio_low = verdict["ratio_low"].number();
    r.verdict.ratio_high = verdict["ratio_high"].number();
    r.verdict.method = verdict["method"].string();
    r.verdict.reason = verdict["reason"].string();
    r.verdict.fix = verdict["fix"].string();
    r.verdict.evidence = verdict["evidence"].string();

    if (report_detail::JsonField fault = root["fault"]; !fault.is_null())
        r.fault = Fault{fault["kind"].string(), fault["trial"].integer(), fault["request"].string(),
                        fault["stage"].string(), fault["message"].string()};
    r.wall_time_s = root["wall_time_s"].number();
    r.complete = root["complete"].boolean();
    return r;
}

namespace report_detail {

inline std::string read_whole_file(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT)
            throw ReportError(path.string() + ": no such file — run the phase that writes it first");
        throw ReportError(path.string() + ": cannot open: " + errno_text(err));
    }
    std::string content;
    char buf[1 << 16];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            throw ReportError(path.string() + ": cannot read: " + errno_text(err));
        }
        if (n == 0) break;
        content.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return content;
}

}  // namespace report_detail

inline PhaseResult read_results_file(const std::filesystem::path& path) {
    const std::string source = path.string();
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
    return phase_result_from_json(doc, source);
}

inline void write_results(const PhaseResult& result, const std::filesystem::path& path) {
    write_file_atomically(path, to_json(result).dump(2) + "\n");
}

// Names for people, shared by the figures and the summary.

inline std::string phase_label(const PhaseResult& r, std::size_t position) {
    if (r.phase.size() > 5 && r.phase.compare(0, 5, "phase") == 0 && r.phase[5] >= '1' && r.phase[5] <= '9')
        return std::string("P") + r.phase[5];
    return "P" + std::to_string(position + 1);
}

inline std::string phase_title(const PhaseResult& r, std::size_t position) {
    std::string number = phase_label(r, position).substr(1);
    if (r.phase == "phase1_http_api") return "Phase " + number + ": HTTP streaming API";
    if (r.phase == "phase2_python_api") return "Phase " + number + ": direct Python API";
    return "Phase " + number + ": " + r.phase;
}

inline std::string engine_title(const EngineInfo& e) {
    return e.name + " " + (e.version.empty() ? std::string("(version unknown)") : e.version);
}

}  // namespace kvgate
