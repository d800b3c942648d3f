// Incremental Server-Sent Events parser: bytes in, in any chunking -> events out.
// Follows the WHATWG event-stream grammar: lines end in CRLF, LF or CR; ':' starts a comment;
// "data" lines of one event are joined with '\n'; a blank line dispatches the event; a leading UTF-8
// byte order mark is skipped.
// It knows nothing of HTTP or JSON, and does not validate UTF-8 (a split multi-byte character is
// simply reassembled because bytes are kept until the line ends).
// What it holds of one event is capped: a stream that never ends its line or event would otherwise
// grow without bound. Past the cap it stops (overflowed()) and reads nothing more.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvgate {

struct SseEvent {
    std::string event;  // "message" unless an "event:" field said otherwise
    std::string data;
    std::string id;
};

class SseParser {
public:
    // The most bytes of one event (its data so far and the line being read) it holds by default;
    // a streamed chunk is a few hundred bytes.
    static constexpr std::size_t default_max_event_bytes = std::size_t{16} << 20;

    explicit SseParser(std::size_t max_event_bytes = default_max_event_bytes) : max_event_bytes_(max_event_bytes) {}

    // Feeds bytes; returns the events completed by them, in order.
    std::vector<SseEvent> feed(std::string_view bytes) {
        std::vector<SseEvent> out;
        if (overflowed_) return out;
        for (char c : bytes) {
            if (after_cr_ && c == '\n') {  // the LF of a CRLF split across reads or not
                after_cr_ = false;
                continue;
            }
            after_cr_ = false;
            if (c == '\r' || c == '\n') {
                after_cr_ = (c == '\r');
                at_start_ = false;
                end_line(out);
            } else {
                if (line_.size() + data_.size() >= max_event_bytes_) {
                    overflowed_ = true;
                    return out;
                }
                line_.push_back(c);
                if (at_start_ && line_.size() == 3) {  // the BOM may arrive split across reads
                    if (line_ == "\xEF\xBB\xBF") line_.clear();
                    at_start_ = false;
                }
            }
        }
        return out;
    }

    // True when bytes of an unfinished event are held (a stream that ends here was cut).
    bool has_partial_event() const { return !line_.empty() || has_data_ || !event_.empty(); }

    // True once an event outgrew max_event_bytes: nothing after it was read.
    bool overflowed() const { return overflowed_; }
    std::size_t max_event_bytes() const { return max_event_bytes_; }

private:
    void end_line(std::vector<SseEvent>& out) {
        if (line_.empty()) {
            dispatch(out);
            return;
        }
        if (line_[0] != ':') {  // ':' lines are comments (keep-alives)
            std::string_view line(line_);
            auto colon = line.find(':');
            std::string_view field = line.substr(0, colon);
            std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
            if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
            if (field == "data") {
                if (has_data_) data_.push_back('\n');
                data_.append(value);
                has_data_ = true;
            } else if (field == "event") {
                event_.assign(value);
            } else if (field == "id" && value.find('\0') == std::string_view::npos) {  // an id with NUL: ignored
                id_.assign(value);
            }  // "retry" and unknown fields do not matter to a one-shot stream
        }
        line_.clear();
    }

    void dispatch(std::vector<SseEvent>& out) {
        if (has_data_) out.push_back({event_.empty() ? "message" : event_, std::move(data_), id_});
        data_.clear();
        event_.clear();
        has_data_ = false;
    }

    std::size_t max_event_bytes_;
    std::string line_, data_, event_, id_;
    bool overflowed_ = false;
    bool has_data_ = false;
    bool after_cr_ = false;
    bool at_start_ = true;  // no line has ended and fewer than 3 bytes came: a BOM may still be here
};

}  // namespace kvgate
