// cli/live_hosts.hpp — which code the live hosts on a database run, and why an instance waits.
//
// A host is live when it has not stopped and its last heartbeat is within two of its leases
// (it heartbeats every half lease). Read from the hosts table, which each host refreshes with
// the orchestration and activity names it registers.
#pragma once

#include <optional>
#include <set>
#include <string>

#include <durable/durable.hpp>

namespace durable::cli {

struct LiveCode {
    int hosts = 0;  // live hosts
    std::set<std::string> orchestrations, activities;
    std::set<std::pair<std::string, std::string>> versions;  // (name, version) pairs
    // Whether a live host runs `name` at `version` ("": any version of the name).
    bool runs(const std::string& name, const std::string& version) const {
        return version.empty() ? orchestrations.count(name) > 0 : versions.count({name, version}) > 0;
    }
};

LiveCode live_code(Database& db);
// "waiting for a host that registers 'X'" (and "version 'V'") for an unfinished instance no
// live host can run that is not held by a host (Pending, or left behind by a host that
// stopped).
std::optional<std::string> waiting_reason(const LiveCode& live, const InstanceState& s);

}  // namespace durable::cli
