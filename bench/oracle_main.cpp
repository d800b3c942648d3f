// kvgate_oracle: the oracle server as a program, for clients in other processes.
// Prints its port on the first line of stdout, serves until SIGINT or SIGTERM, then prints the
// per-request log (the same JSON as GET /oracle/log; instants in ns of CLOCK_MONOTONIC).
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>

#include "oracle_server.hpp"

namespace {

constexpr const char* kUsage =
    "usage: kvgate_oracle [--port N] [--delay-ms MS] [--tokens N] [--gap-us US] [--role together|separate|early]\n"
    "                     [--prime-us US]\n"
    "  --port      0 (default): an ephemeral port, printed on the first line\n"
    "  --delay-ms  first token this long after the request's last byte was read (default 20)\n"
    "  --tokens    content tokens per response (default 4)\n"
    "  --gap-us    between content tokens (default 1000)\n"
    "  --role      the chat role chunk: in the same send() as the first token (default), in its own\n"
    "              send() right before it, or early, with the headers\n"
    "  --prime-us  run the kernel's TCP send path this long before each first token, and spin\n"
    "              until it is due (default 200; 0: a cold path, as after an idle wait)\n";

int to_int(const std::string& flag, const std::string& value) {
    std::size_t used = 0;
    int x = 0;
    try {
        x = std::stoi(value, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != value.size()) throw std::invalid_argument(flag + ": '" + value + "' is not a number");
    return x;
}

}  // namespace

int main(int argc, char** argv) {
    kvgate::bench::OracleConfig config;
    int port = 0;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string flag = argv[i];
            if (flag == "--help" || flag == "-h") {
                std::cout << kUsage;
                return 0;
            }
            if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
            const std::string value = argv[++i];
            if (flag == "--port")
                port = to_int(flag, value);
            else if (flag == "--delay-ms")
                config.first_token_delay_ms = to_int(flag, value);
            else if (flag == "--tokens")
                config.tokens = to_int(flag, value);
            else if (flag == "--gap-us")
                config.inter_token_us = to_int(flag, value);
            else if (flag == "--prime-us")
                config.prime_us = to_int(flag, value);
            else if (flag == "--role")
                config.role = kvgate::bench::role_placement_from(value);
            else
                throw std::invalid_argument("unknown flag " + flag);
        }
        if (port < 0 || port > 65535) throw std::invalid_argument("--port: not in [0, 65535]");
    } catch (const std::exception& e) {
        std::cerr << "kvgate_oracle: " << e.what() << "\n" << kUsage;
        return 2;
    }

    // Blocked before the server's threads exist, so that they inherit the mask and only sigwait sees them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    try {
        kvgate::bench::OracleServer oracle(config, static_cast<std::uint16_t>(port));
        std::cout << oracle.port() << std::endl;
        int signal = 0;
        sigwait(&stop_signals, &signal);
        std::cout << oracle.log().dump(1) << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "kvgate_oracle: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
