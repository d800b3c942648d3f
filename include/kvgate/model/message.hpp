// A chat message as an engine takes it: Experiment 2 sends its conversation as separate messages so
// the engine's chat template applies between turns (engine.hpp), and builds them in conversation.hpp.
#pragma once

#include <string>

namespace kvgate {

enum class Role { system, user, assistant };

inline const char* role_name(Role r) {
    switch (r) {
        case Role::system: return "system";
        case Role::user: return "user";
        case Role::assistant: return "assistant";
    }
    return "?";
}

struct Message {
    Role role = Role::user;
    std::string content;
    bool operator==(const Message& o) const { return role == o.role && content == o.content; }
    bool operator!=(const Message& o) const { return !(*this == o); }
};

}  // namespace kvgate
