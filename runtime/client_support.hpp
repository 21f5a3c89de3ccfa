// runtime/client_support.hpp — what the Client's source files share (client.cpp, client_rewind.cpp,
// client_async.cpp).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "durable/client.hpp"
#include "store/store.hpp"

namespace durable::detail {

// The newest version live hosts register, per orchestration name, for a client that has no
// host of its own: one read of the hosts table a second at most (schedule is a hot path).
struct VersionCache {
    std::mutex mu;
    std::chrono::steady_clock::time_point read_at{};  // guarded by mu
    std::map<std::string, std::string> newest;         // guarded by mu
};

// Submits one store write and blocks until it is durable (or failed: rethrown).
store::WriteResult wait_write(const std::function<void(store::WriteCallback)>& submit);
// Times a client writes: the attached host's clock, else the database's.
std::int64_t wall_ms(const Database& db, const std::shared_ptr<ClientAttachment>& a);
// Stored JSON text as JSON (text that is not JSON as a string); null for none.
Json parse_or(const std::optional<std::string>& s);
InstanceState to_state(const store::InstanceRow& r);
// Who the client is, for the audit log.
std::string actor_name(const std::shared_ptr<ClientAttachment>& a);

}  // namespace durable::detail
