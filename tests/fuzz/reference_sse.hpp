// A deliberately plain event-stream parser, the oracle of the SSE fuzz check: the whole stream at
// once, written step by step from the WHATWG HTML standard, "9.2.6 Interpreting an event stream",
// with no incremental state to get wrong. Like kvgate::SseParser it works on bytes: it neither
// decodes nor validates UTF-8 (the standard decodes first; the parser hands bytes on as they came).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kvgate::fuzz {

struct ReferenceEvent {
    std::string type, data, last_event_id;
    std::size_t dispatched_at;  // offset of the line-end byte that dispatched it
};

struct ReferenceParse {
    std::vector<ReferenceEvent> events;
    bool partial = false;  // the stream ends inside an event: an unfinished line, data or type held
};

inline ReferenceParse reference_parse(std::string_view s) {
    ReferenceParse out;
    std::size_t pos = 0;
    // "One leading U+FEFF BYTE ORDER MARK character must be ignored if any are present."
    if (s.substr(0, 3) == "\xEF\xBB\xBF") pos = 3;
    std::string data, type, last_event_id;
    while (pos < s.size()) {
        // end-of-line = ( cr lf / cr / lf )
        const std::size_t eol = s.find_first_of("\r\n", pos);
        if (eol == std::string_view::npos) {
            out.partial = true;  // bytes after the last line end: an unfinished line
            break;
        }
        const std::string_view line = s.substr(pos, eol - pos);
        pos = eol + 1;
        if (s[eol] == '\r' && pos < s.size() && s[pos] == '\n') ++pos;

        if (line.empty()) {  // "If the line is empty (a blank line): Dispatch the event"
            if (data.empty()) {  // "If the data buffer is an empty string, ... return."
                type.clear();
                continue;
            }
            data.pop_back();  // "If the data buffer's last character is a LF, remove it"
            out.events.push_back({type.empty() ? "message" : type, data, last_event_id, eol});
            data.clear();
            type.clear();
            continue;
        }
        if (line[0] == ':') continue;  // "If the line starts with a U+003A COLON character: Ignore the line."
        std::string_view field = line, value;
        if (const auto colon = line.find(':'); colon != std::string_view::npos) {
            field = line.substr(0, colon);
            value = line.substr(colon + 1);
            if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
        }  // "Otherwise, the string is not empty but does not contain a colon: the whole line is the
           // field name, and the empty string the value."
        if (field == "event") {
            type = std::string(value);
        } else if (field == "data") {
            data += value;
            data += '\n';
        } else if (field == "id") {
            // "If the field value does not contain U+0000 NULL, then set the last event ID buffer
            // to the field value. Otherwise, ignore the field."
            if (value.find('\0') == std::string_view::npos) last_event_id = std::string(value);
        }  // "retry" sets the reconnection time, which a one-shot stream never uses; others are ignored.
    }
    // "Once the end of the file is reached, any pending data must be discarded."
    if (!data.empty() || !type.empty()) out.partial = true;
    return out;
}

}  // namespace kvgate::fuzz
