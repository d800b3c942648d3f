// Stable names for enum values: one table per enum, read both ways. Settings, results files and
// messages carry the names; the code compares the values.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace kvgate::detail {

template <class E>
struct EnumName {
    E value;
    const char* name;
};

template <class E, std::size_t N>
const char* enum_name(const EnumName<E> (&names)[N], E value) {
    for (const auto& n : names)
        if (n.value == value) return n.name;
    return "unknown";
}

template <class E, std::size_t N>
std::optional<E> enum_from_name(const EnumName<E> (&names)[N], const std::string& name) {
    for (const auto& n : names)
        if (name == n.name) return n.value;
    return std::nullopt;
}

// "a, b, c": the accepted names, for messages and the settings table.
template <class E, std::size_t N>
std::string enum_name_list(const EnumName<E> (&names)[N]) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + std::string(n.name);
    return out;
}

}  // namespace kvgate::detail
