// durable/status.hpp — the lifecycle states of an orchestration instance.
#pragma once

#include <optional>
#include <string_view>

namespace durable {

// Pending: scheduled, not yet started. Running: started, not finished. Suspended: paused by a
// client; events wait in its inbox. Completed / Failed / Terminated are final.
enum class Status { Pending, Running, Suspended, Completed, Failed, Terminated };

std::string_view to_string(Status s);
// Parses a status name ("Completed", case-sensitive as printed by to_string).
std::optional<Status> status_from_string(std::string_view s);
inline bool is_terminal(Status s) {
    return s == Status::Completed || s == Status::Failed || s == Status::Terminated;
}

}  // namespace durable
