// kvgate::core alone: settings, the experiment's phases and the results JSON, with no Python or HTTP.
#include <iostream>

#include "kvgate/model/experiment.hpp"
#include "kvgate/model/results_json.hpp"
#include "kvgate/model/settings.hpp"

int main() {
    kvgate::PhaseResult r;
    r.phase = kvgate::phase_descriptor("phase1");
    r.settings = kvgate::settings_from_env();
    const auto doc = kvgate::to_json(r);
    const auto back = kvgate::phase_result_from_json(doc, "consumer");
    if (back.phase != r.phase || doc.at("phase") != "phase1_http_api") return 1;
    std::cout << "consumer_core: " << back.phase.results_file << " round-trips\n";
    return 0;
}
