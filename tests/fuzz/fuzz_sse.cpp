// libFuzzer target: one input = a stream, its cut into reads and an HTTP status (see decode()).
#include <cstddef>
#include <cstdint>

#include "sse_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    kvgate::fuzz::check(kvgate::fuzz::decode(data, size));
    return 0;
}
