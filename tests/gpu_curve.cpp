// Experiment 2 on the local vLLM: the default sweep, with what the mechanism guarantees asserted
// (the server reuses exactly the predicted blocks at every cell; recomputing tokens costs time),
// never fixed times. The results file is written after every cell and at the end, before any
// assertion can stop the test, so the report step draws the curve whatever happens.
#include "gpu_support.hpp"

using namespace kvgate;

TEST_CASE("curve: reuse matches the prediction at every point and the slope is above zero", "[gpu][curve]") {
    Settings s = testing::http_settings("apc");
    s.target.endpoint = Endpoint::chat;  // the conversation is sent as chat messages
    const std::filesystem::path path = results_path(s.out, phase_descriptor(curve_phase_name));
    const auto engine = make_engine(s);
    const auto r = record_curve(*engine, s, path, std::cout);  // the loop `kvgate run experiment2` uses
    const auto a = analyse_curve(r.cells, s.gate.confidence);
    const auto verdict = curve_verdict(r, a);  // the CLI's rule: it must agree with the checks below
    std::cout << headline_text(curve_headline(r), path) << std::flush;
    INFO("fault: " << (r.fault ? r.fault->message : "none"));
    REQUIRE_FALSE(r.fault);
    for (const auto& c : r.cells) {
        INFO(edit_kind_name(c.kind) << " at " << c.position << ", context " << c.context_tokens << ", trial "
                                    << c.trial + 1 << ": predicted " << c.predicted_reuse << ", reported "
                                    << c.reported_cached);
        CHECK(c.flag.empty());
    }
    INFO("fit: " << a.fit.problem << a.fit.selection);
    REQUIRE(a.fit.ok());
    REQUIRE(a.per_token);
    INFO("cost per recomputed token " << a.per_token->estimate << " ms [" << a.per_token->low << ", "
                                      << a.per_token->high << "]");
    CHECK(a.per_token->low > 0);
    INFO(verdict.reason);
    CHECK(verdict.outcome == Outcome::pass);
}
