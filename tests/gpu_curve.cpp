// Experiment 2 on the local vLLM: the default sweep, with what the mechanism guarantees asserted
// (the server reuses exactly the predicted blocks at every cell; recomputing tokens costs time),
// never fixed times. The results file is written after every cell and at the end, before any
// assertion can stop the test, so the report step draws the curve whatever happens.
#include "gpu_support.hpp"

using namespace kvgate;

TEST_CASE("curve: reuse matches the prediction at every point and the slope is above zero", "[gpu][curve]") {
    Settings s = testing::http_settings("apc");
    s.endpoint = Endpoint::chat;  // the conversation is sent as chat messages
    const std::filesystem::path path = results_path(s.out, phase_descriptor(curve_phase_name));
    std::filesystem::create_directories(path.parent_path());
    const auto engine = make_engine(s);
    const auto r = run_curve(*engine, s, [&](const CurveResult& partial, const CurveCell& c, int total) {
        std::cout << curve_progress_line(c, static_cast<int>(partial.cells.size()), total) << std::endl;
        write_file_atomically(path, curve_result_json(partial).dump(2) + "\n");
    });
    write_file_atomically(path, curve_result_json(r).dump(2) + "\n");
    const auto a = analyse_curve(r.cells, s.confidence);
    std::cout << path.string() << ": " << a.cells - a.flagged << " of " << a.cells << " cells agree; "
              << a.fit.selection << "; wall " << r.wall_time_s << " s" << std::endl;
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
    const auto verdict = curve_verdict(r, a);  // the CLI's rule: it must agree with the checks above
    INFO(verdict.reason);
    CHECK(verdict.outcome == Outcome::pass);
}
