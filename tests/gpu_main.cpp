// The gpu tests' main. Catch2's own exits with the number of failed assertions (up to 255), so a
// run with as many failures as KVGATE_SKIP_EXIT_CODE would count as skipped (gpu_support.hpp's
// skip_or_fail is the only way to that code); here such a run exits 1.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

int main(int argc, char** argv) {
    const int rc = Catch::Session().run(argc, argv);
    return rc == KVGATE_SKIP_EXIT_CODE ? 1 : rc;
}
