// Numbers into text the printf way, for the verdicts' and reports' sentences: every argument is
// taken as a double (the formats use %f forms), and the string is sized to fit, never cut short.
#pragma once

#include <cstdio>
#include <string>

namespace kvgate::detail {

template <class... Numbers>
std::string fmt(const char* format, Numbers... numbers) {
    const int size = std::snprintf(nullptr, 0, format, static_cast<double>(numbers)...);
    if (size <= 0) return {};
    std::string out(static_cast<std::size_t>(size), '\0');
    std::snprintf(out.data(), out.size() + 1, format, static_cast<double>(numbers)...);
    return out;
}

}  // namespace kvgate::detail
