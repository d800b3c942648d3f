// Text for JSON and for one-line messages: whatever bytes a server or a tokenizer produced.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace kvgate {

// Fault texts carry the server's own bytes, which may be anything; results are JSON, which needs
// valid UTF-8. Invalid sequences (also a character cut by a length limit) become U+FFFD.
inline std::string valid_utf8(const std::string& s) {
    std::string out;
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    for (std::size_t i = 0; i < n;) {
        const unsigned char c = p[i];
        std::size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        bool ok = len > 0 && i + len <= n;
        for (std::size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xc0) == 0x80;
        // Overlong three/four-byte forms, UTF-16 surrogates and code points above U+10FFFF.
        if (ok && c == 0xe0) ok = p[i + 1] >= 0xa0;
        if (ok && c == 0xed) ok = p[i + 1] < 0xa0;
        if (ok && c == 0xf0) ok = p[i + 1] >= 0x90;
        if (ok && c == 0xf4) ok = p[i + 1] < 0x90;
        if (ok) {
            out.append(s, i, len);
            i += len;
        } else {
            out += "\xef\xbf\xbd";
            ++i;
        }
    }
    return out;
}

// Valid UTF-8 on one line: invalid bytes become U+FFFD (a window may cut a character) and control
// characters are escaped, so that a message quoting the text stays one readable line.
inline std::string printable(const std::string& s) {
    std::string out;
    for (const unsigned char c : valid_utf8(s)) {
        if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned>(c));
            out += hex;
        } else out += static_cast<char>(c);
    }
    return out;
}

}  // namespace kvgate
