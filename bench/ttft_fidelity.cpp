// kvgate_ttft_fidelity: how late each client's first-token stamp is, against the oracle's instant
// right before it sent the token. kvgate's HttpEngine and the Python clients the field uses run
// against one oracle in one run, N sequential requests each on one keep-alive connection; then
// experimental clients (a raw socket, blocking or spinning) show where kvgate's time goes.
//
//   error       = client's first-content stamp - oracle's instant before send() of that chunk
//   TTFT excess = client's TTFT - oracle's TTFT (request read -> first token sent): the error plus
//                 the request's own path (serialising, send, the oracle waking to read it)
//   CPU         = the client's CPU time over the measured requests / N (C++: the calling thread's
//                 CLOCK_THREAD_CPUTIME_ID, the oracle runs on other threads; Python: process_time)
//
// All instants are CLOCK_MONOTONIC (steady_clock; Python's time.monotonic_ns), one clock system-wide.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvgate/engine/vllm.hpp"
#include "kvgate/http/http_engine.hpp"
#include "kvgate/stats/stats.hpp"
#include "oracle_server.hpp"

extern char** environ;

namespace {

using kvgate::Clock;
using kvgate::bench::monotonic_ns;
using kvgate::bench::OracleRecord;
using kvgate::bench::OracleServer;

struct Options {
    int n = 300;
    int warmup = 10;
    kvgate::bench::OracleConfig oracle;
    std::string python = kvgate::settings_from_env().python.venv + "/bin/python";  // KVGATE_VENV
    std::string py_clients = KVGATE_BENCH_PY_CLIENTS;
    std::vector<std::string> python_clients = {"aiohttp", "httpx", "openai"};
    bool probes = true;
    std::string json_path;
    std::string prompt = "Say something.";
};

constexpr const char* kUsage =
    "usage: kvgate_ttft_fidelity [--n 300] [--warmup 10] [--delay-ms 20] [--tokens 4] [--gap-us 1000]\n"
    "                            [--role together|separate|early] [--prime-us 200] [--python PATH]\n"
    "                            [--py-clients PATH] [--python-clients aiohttp,httpx,openai|none]\n"
    "                            [--no-probes] [--json FILE]\n"
    "  --delay-ms, --tokens, --gap-us, --role, --prime-us: the oracle's (see kvgate_oracle --help)\n"
    "  --no-probes  skip the experimental clients that show where the time goes\n";

std::int64_t thread_cpu_ns() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

struct ClientResult {
    std::string name;
    std::string kind;  // "kvgate" (the reference), "python", "probe" (experimental)
    std::vector<double> error_us;
    std::vector<double> ttft_excess_us;
    std::optional<std::vector<double>> first_choice_error_us;  // the vLLM-style stamp, where it differs
    double cpu_us_per_request = 0;
    int connections = 0;
    std::string note;
};

int distinct_connections(const std::vector<OracleRecord>& records) {
    std::vector<int> seen;
    for (const auto& r : records)
        if (std::find(seen.begin(), seen.end(), r.connection) == seen.end()) seen.push_back(r.connection);
    return static_cast<int>(seen.size());
}

double us(std::int64_t ns) { return static_cast<double>(ns) / 1e3; }

std::string fixed(double x, int decimals = 0) {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(decimals);
    s << x;
    return s.str();
}

// Takes the records of the measured requests: the last n the oracle streamed since `first`.
std::vector<OracleRecord> measured_records(const OracleServer& oracle, std::uint64_t first, int n) {
    auto records = oracle.records_since(first);
    if (records.size() != static_cast<std::size_t>(n))
        throw std::runtime_error("the oracle streamed " + std::to_string(records.size()) + " requests, expected " +
                                 std::to_string(n));
    return records;
}

kvgate::Settings kvgate_settings(const OracleServer& oracle) {
    kvgate::Settings s;
    s.target.url = oracle.url();
    s.target.model = "oracle";
    return s;
}

// kvgate's shipped HttpEngine, on one keep-alive connection; Completion::sent is its stamps' origin.
ClientResult run_kvgate(OracleServer& oracle, const Options& o) {
    kvgate::HttpEngine engine(kvgate_settings(oracle).target, std::make_unique<kvgate::vllm::Dialect>());
    const auto complete = [&] {
        auto c = engine.complete(o.prompt, o.oracle.tokens);
        if (c.fault) throw std::runtime_error("kvgate HttpEngine: " + std::string(kvgate::to_string(c.fault->kind)) + ": " + c.fault->message);
        return c;
    };
    for (int i = 0; i < o.warmup; ++i) complete();
    const auto first = oracle.request_count();
    std::vector<kvgate::Completion> done(o.n);
    const auto cpu_start = thread_cpu_ns();
    for (auto& c : done) c = complete();
    const auto cpu = thread_cpu_ns() - cpu_start;
    const auto records = measured_records(oracle, first, o.n);

    ClientResult r{"kvgate HttpEngine (cpp-httplib " CPPHTTPLIB_VERSION ")", "kvgate", {}, {}, {}, us(cpu) / o.n,
                   distinct_connections(records), ""};
    for (int i = 0; i < o.n; ++i) {
        const double token_us = *done[i].record.stamps.first_token_ms * 1e3;
        r.error_us.push_back(us(monotonic_ns(done[i].sent) - records[i].first_token_ns) + token_us);
        r.ttft_excess_us.push_back(token_us - us(records[i].first_token_ns - records[i].request_read_ns));
    }
    return r;
}

// Experimental probe (not kvgate code): a bare HTTP/1.1 client on a raw socket, to split the error
// into what any reader pays (the oracle's send, the wake-up) and what the HTTP library adds.
class RawProbe {
public:
    RawProbe(std::uint16_t port, const std::string& prompt, int tokens) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port);
        const int one = 1;
        if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
            throw std::runtime_error("raw probe: cannot connect to the oracle");
        const std::string body =
            nlohmann::json{{"model", "oracle"},
                           {"max_tokens", tokens},
                           {"stream", true},
                           {"stream_options", {{"include_usage", true}}},
                           {"messages", nlohmann::json::array({{{"role", "user"}, {"content", prompt}}})}}
                .dump();
        request_ = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   "Accept: text/event-stream\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body;
    }
    ~RawProbe() { ::close(fd_); }
    RawProbe(const RawProbe&) = delete;
    RawProbe& operator=(const RawProbe&) = delete;

    struct Stamps {
        Clock::time_point sent, first_token;
    };

    // spin: non-blocking recv() in a loop, so the thread never sleeps and its vCPU never halts.
    Stamps request(bool spin) {
        Stamps s;
        s.sent = Clock::now();
        for (std::string_view rest = request_; !rest.empty();) {
            const auto n = ::send(fd_, rest.data(), rest.size(), MSG_NOSIGNAL);
            if (n <= 0) throw std::runtime_error("raw probe: send failed");
            rest.remove_prefix(static_cast<std::size_t>(n));
        }
        // The oracle's first token is " tok0"; the response ends with the last chunk.
        std::string response;
        bool have_token = false;
        char buf[16384];
        while (response.size() < 5 || response.compare(response.size() - 5, 5, "0\r\n\r\n") != 0) {
            const auto n = ::recv(fd_, buf, sizeof buf, spin ? MSG_DONTWAIT : 0);
            const auto at = Clock::now();
            if (n < 0 && spin && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
            if (n <= 0) throw std::runtime_error("raw probe: the oracle closed the connection");
            response.append(buf, static_cast<std::size_t>(n));
            if (!have_token && response.find("\" tok0\"") != std::string::npos) {
                s.first_token = at;
                have_token = true;
            }
        }
        return s;
    }

private:
    int fd_ = -1;
    std::string request_;
};

ClientResult run_probe(OracleServer& oracle, const Options& o, bool spin) {
    RawProbe probe(oracle.port(), o.prompt, o.oracle.tokens);
    for (int i = 0; i < o.warmup; ++i) probe.request(spin);
    const auto first = oracle.request_count();
    std::vector<RawProbe::Stamps> stamps(o.n);
    const auto cpu_start = thread_cpu_ns();
    for (auto& s : stamps) s = probe.request(spin);
    const auto cpu = thread_cpu_ns() - cpu_start;
    const auto records = measured_records(oracle, first, o.n);
    ClientResult r{spin ? "raw socket, non-blocking recv() spin" : "raw socket, blocking recv()", "probe", {}, {}, {},
                   us(cpu) / o.n, distinct_connections(records), ""};
    if (spin) {
        // No reader sleeps in this run, so the oracle's send() wakes nobody: its length is the
        // server side's share of every client's error.
        std::vector<double> send_us;
        for (const auto& rec : records) send_us.push_back(us(rec.first_token_sent_ns - rec.first_token_ns));
        r.note = "spins a core for the whole wait. The oracle's own send() of the first token took median " +
                 fixed(kvgate::median(send_us)) + " us in this run";
    }
    for (int i = 0; i < o.n; ++i) {
        r.error_us.push_back(us(monotonic_ns(stamps[i].first_token) - records[i].first_token_ns));
        r.ttft_excess_us.push_back(us(monotonic_ns(stamps[i].first_token) - monotonic_ns(stamps[i].sent)) -
                                   us(records[i].first_token_ns - records[i].request_read_ns));
    }
    return r;
}

// Runs a program and returns what it wrote on stdout; its stderr passes through.
std::string run_capture(const std::vector<std::string>& argv) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int spawned = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    std::string text;
    char buf[65536];
    for (ssize_t n; spawned == 0 && (n = ::read(out[0], buf, sizeof buf)) != 0;)
        if (n > 0) text.append(buf, static_cast<std::size_t>(n));
        else if (errno != EINTR) break;
    ::close(out[0]);
    if (spawned != 0) throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(spawned));
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error(argv[0] + " " + argv[1] + " failed");
    return text;
}

ClientResult run_python(OracleServer& oracle, const Options& o, const std::string& client) {
    const auto first = oracle.request_count();
    const auto spawned_ns = monotonic_ns();
    const auto out = nlohmann::json::parse(run_capture(
        {o.python, o.py_clients, "--url", oracle.url(), "--client", client, "--n", std::to_string(o.n), "--warmup",
         std::to_string(o.warmup), "--tokens", std::to_string(o.oracle.tokens), "--prompt", o.prompt}));
    const auto exited_ns = monotonic_ns();
    // Both processes must read one clock, or every error below would be meaningless.
    const auto started_ns = out.at("started_ns").get<std::int64_t>();
    if (started_ns < spawned_ns || started_ns > exited_ns)
        throw std::runtime_error("py_clients.py's clock is not this process's CLOCK_MONOTONIC");

    std::map<std::string, OracleRecord> by_id;
    for (auto& r : oracle.records_since(first)) by_id[r.request_id] = r;
    std::vector<OracleRecord> records;
    ClientResult r{out.at("description").get<std::string>(), "python", {}, {}, std::vector<double>{},
                   us(out.at("cpu_ns").get<std::int64_t>()) / o.n, 0, ""};
    for (const auto& q : out.at("requests")) {
        const auto it = by_id.find(q.at("id").get<std::string>());
        if (it == by_id.end()) throw std::runtime_error("the oracle has no record of " + q.at("id").dump());
        const auto& rec = it->second;
        records.push_back(rec);
        const auto content = q.at("first_content_ns").get<std::int64_t>();
        r.error_us.push_back(us(content - rec.first_token_ns));
        r.first_choice_error_us->push_back(us(q.at("first_choice_ns").get<std::int64_t>() - rec.first_token_ns));
        r.ttft_excess_us.push_back(us(content - q.at("start_ns").get<std::int64_t>()) -
                                   us(rec.first_token_ns - rec.request_read_ns));
    }
    r.connections = distinct_connections(records);
    return r;
}

struct Targets {
    double median_us = 100, p99_us = 500, ratio = 5;
};

// One Markdown table; `notes` collects the footnotes, numbered across tables.
void print_table(const std::vector<const ClientResult*>& rows, double kvgate_median, std::vector<std::string>& notes,
                 std::ostream& out) {
    out << "| client | median error (us) | p99 error (us) | median / kvgate's | median TTFT excess (us) "
           "| CPU per request (us) | connections |\n"
        << "|---|---:|---:|---:|---:|---:|---:|\n";
    for (const auto* r : rows) {
        std::string name = r->name;
        if (!r->note.empty()) {
            notes.push_back(r->note);
            name += " [" + std::to_string(notes.size()) + "]";
        }
        if (r->first_choice_error_us) {
            notes.push_back("stamped instead at the first event with non-empty `choices` (the role chunk; what vLLM "
                            "bench serve calls the first token): median " +
                            fixed(kvgate::median(*r->first_choice_error_us)) + " us, p99 " +
                            fixed(kvgate::quantile(*r->first_choice_error_us, 0.99)) + " us");
            name += " [" + std::to_string(notes.size()) + "]";
        }
        const double median = kvgate::median(r->error_us);
        out << "| " << name << " | " << fixed(median) << " | " << fixed(kvgate::quantile(r->error_us, 0.99)) << " | "
            << fixed(median / kvgate_median, 1) << "x | " << fixed(kvgate::median(r->ttft_excess_us)) << " | "
            << fixed(r->cpu_us_per_request) << " | " << r->connections << " |\n";
    }
}

void print_markdown(const Options& o, const std::vector<ClientResult>& results, std::ostream& out) {
    const auto& kvgate = results.front();
    const double kvgate_median = kvgate::median(kvgate.error_us);
    std::vector<const ClientResult*> compared, probes;
    for (const auto& r : results) (r.kind == "probe" ? probes : compared).push_back(&r);
    std::vector<std::string> notes;

    out << "## First-token stamp error against the oracle\n\n"
        << o.n << " sequential requests per client after " << o.warmup << " warm-up; first token "
        << o.oracle.first_token_delay_ms << " ms after the request was read; " << o.oracle.tokens << " tokens "
        << o.oracle.inter_token_us << " us apart; role chunk: " << to_string(o.oracle.role) << "; oracle's send path "
        << (o.oracle.prime_us > 0 ? "primed " + std::to_string(o.oracle.prime_us) + " us before each first token"
                                  : "cold (not primed)")
        << ".\n"
        << "Error = client's first-content stamp - oracle's instant right before send() of that chunk; TTFT excess = "
           "client's TTFT - oracle's (request read -> first token sent). CLOCK_MONOTONIC throughout.\n\n";
    print_table(compared, kvgate_median, notes, out);
    if (!probes.empty()) {
        out << "\n### Where the time goes (experimental clients, not shipped code)\n\n";
        print_table(probes, kvgate_median, notes, out);
    }
    out << "\n";
    for (std::size_t i = 0; i < notes.size(); ++i) out << "[" << i + 1 << "] " << notes[i] << "\n";

    const Targets t;
    const double kvgate_p99 = kvgate::quantile(kvgate.error_us, 0.99);
    out << "\nTargets (" << kvgate.name << "):\n"
        << "- median error <= " << t.median_us << " us: " << (kvgate_median <= t.median_us ? "met" : "MISSED") << " ("
        << fixed(kvgate_median) << " us)\n"
        << "- p99 error <= " << t.p99_us << " us: " << (kvgate_p99 <= t.p99_us ? "met" : "MISSED") << " ("
        << fixed(kvgate_p99) << " us)\n";
    for (const auto* r : compared)
        if (r->kind == "python") {
            const double ratio = kvgate::median(r->error_us) / kvgate_median;
            out << "- median error >= " << t.ratio << "x smaller than " << r->name << "'s: "
                << (ratio >= t.ratio ? "met" : "MISSED") << " (" << fixed(ratio, 1) << "x)\n";
        }
}

nlohmann::json to_json(const Options& o, const std::vector<ClientResult>& results) {
    nlohmann::json clients = nlohmann::json::array();
    for (const auto& r : results) {
        nlohmann::json c = {{"name", r.name},
                            {"kind", r.kind},
                            {"median_error_us", kvgate::median(r.error_us)},
                            {"p99_error_us", kvgate::quantile(r.error_us, 0.99)},
                            {"median_ttft_excess_us", kvgate::median(r.ttft_excess_us)},
                            {"cpu_us_per_request", r.cpu_us_per_request},
                            {"connections", r.connections},
                            {"note", r.note},
                            {"error_us", r.error_us},
                            {"ttft_excess_us", r.ttft_excess_us}};
        if (r.first_choice_error_us) c["first_choice_error_us"] = *r.first_choice_error_us;
        clients.push_back(c);
    }
    return {{"n", o.n}, {"warmup", o.warmup}, {"oracle", kvgate::bench::to_json(o.oracle)}, {"clients", clients}};
}

std::vector<std::string> split(const std::string& list) {
    std::vector<std::string> out;
    std::stringstream s(list);
    for (std::string item; std::getline(s, item, ',');)
        if (!item.empty() && item != "none") out.push_back(item);
    return out;
}

Options parse(int argc, char** argv) {
    Options o;
    const auto number = [](const std::string& flag, const std::string& v, int lo) {
        std::size_t used = 0;
        int x = lo - 1;
        try {
            x = std::stoi(v, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used == 0 || used != v.size() || x < lo)
            throw std::invalid_argument(flag + ": '" + v + "' is not a whole number >= " + std::to_string(lo));
        return x;
    };
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--help" || flag == "-h") {
            std::cout << kUsage;
            std::exit(0);
        }
        if (flag == "--no-probes") {
            o.probes = false;
            continue;
        }
        if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
        const std::string v = argv[++i];
        if (flag == "--n") o.n = number(flag, v, 2);
        else if (flag == "--warmup") o.warmup = number(flag, v, 0);
        else if (flag == "--delay-ms") o.oracle.first_token_delay_ms = number(flag, v, 0);
        else if (flag == "--tokens") o.oracle.tokens = number(flag, v, 1);
        else if (flag == "--gap-us") o.oracle.inter_token_us = number(flag, v, 0);
        else if (flag == "--role") o.oracle.role = kvgate::bench::role_placement_from(v);
        else if (flag == "--prime-us") o.oracle.prime_us = number(flag, v, 0);
        else if (flag == "--python") o.python = v;
        else if (flag == "--py-clients") o.py_clients = v;
        else if (flag == "--python-clients") o.python_clients = split(v);
        else if (flag == "--json") o.json_path = v;
        else throw std::invalid_argument("unknown flag " + flag);
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    try {
        o = parse(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "kvgate_ttft_fidelity: " << e.what() << "\n" << kUsage;
        return 2;
    }
    try {
        OracleServer oracle(o.oracle);
        std::vector<ClientResult> results;
        results.push_back(run_kvgate(oracle, o));
        for (const auto& client : o.python_clients) results.push_back(run_python(oracle, o, client));
        if (o.probes) {
            results.push_back(run_probe(oracle, o, false));
            results.push_back(run_probe(oracle, o, true));
        }
        print_markdown(o, results, std::cout);
        if (!o.json_path.empty()) {
            std::ofstream(o.json_path) << to_json(o, results).dump(1) << "\n";
            std::cout << "\nwrote " << o.json_path << "\n";
        }
    } catch (const std::exception& e) {
        std::cerr << "kvgate_ttft_fidelity: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
