// The names of instance statuses.
#include "durable/status.hpp"

namespace durable {

std::string_view to_string(Status s) {
    switch (s) {
        case Status::Pending: return "Pending";
        case Status::Running: return "Running";
        case Status::Suspended: return "Suspended";
        case Status::Completed: return "Completed";
        case Status::Failed: return "Failed";
        case Status::Terminated: return "Terminated";
    }
    return "Unknown";
}

std::optional<Status> status_from_string(std::string_view s) {
    for (auto st : {Status::Pending, Status::Running, Status::Suspended, Status::Completed, Status::Failed,
                    Status::Terminated}) {
        if (s == to_string(st)) return st;
    }
    return std::nullopt;
}

}  // namespace durable
