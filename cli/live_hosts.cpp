// Which code the live hosts run (see live_hosts.hpp).
#include "cli/live_hosts.hpp"

#include <fmt/format.h>

#include "cli/common.hpp"

namespace durable::cli {

LiveCode live_code(Database& db) {
    LiveCode out;
    auto now = now_ms();
    for (const auto& h : Client(db).hosts()) {
        if (!h.live_at(now)) continue;
        ++out.hosts;
        out.orchestrations.insert(h.orchestrations.begin(), h.orchestrations.end());
        out.activities.insert(h.activities.begin(), h.activities.end());
    }
    return out;
}

std::optional<std::string> waiting_reason(const LiveCode& live, const InstanceState& s) {
    if (s.status != Status::Pending || live.orchestrations.count(s.name)) return std::nullopt;
    return fmt::format("waiting for a host that registers '{}'{}", s.name,
                       live.hosts == 0 ? " (no host is running)" : "");
}

}  // namespace durable::cli
