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
        for (const auto& [name, versions] : h.versions) {
            for (const auto& v : versions) out.versions.emplace(name, v);
        }
    }
    return out;
}

std::optional<std::string> waiting_reason(const LiveCode& live, const InstanceState& s) {
    if (is_terminal(s.status) || live.runs(s.name, s.version)) return std::nullopt;
    // Held by a live lease: a host is on it (the hosts table may lag behind).
    if (s.status != Status::Pending && s.lease_owner && s.lease_expires_at_ms >= now_ms()) return std::nullopt;
    return fmt::format("waiting for a host that registers '{}'{}{}", s.name,
                       s.version.empty() ? std::string() : fmt::format(" version '{}'", s.version),
                       live.hosts == 0 ? " (no host is running)" : "");
}

}  // namespace durable::cli
