// runtime/client_support.hpp — what the Client's source files share (client.cpp,
// client_async.cpp, client_rewind.cpp): the clock a client's writes take their times from,
// the actor its audit records name, the blocking form of a store write, and the conversion
// of an instance row to the public InstanceState.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "durable/client.hpp"
#include "durable/tracing.hpp"
#include "store/store.hpp"

namespace durable::detail {

// The newest version live hosts register, per orchestration name, for a client that has no
// host of its own: one read of the hosts table a second at most (schedule is a hot path).
struct VersionCache {
    std::mutex mu;
    std::chrono::steady_clock::time_point read_at{};    // guarded by mu
    std::map<std::string, std::string> newest;           // guarded by mu
};

// Submits one store write and blocks until it is durable (or failed: rethrown); the waiting
// thread may commit it itself (store::LeaderCommits).
store::WriteResult wait_write(const std::function<void(store::WriteCallback)>& submit);
// The attached host's clock, else the database's (the server's for PostgreSQL): the clock
// lease and timer times are compared in.
std::int64_t client_wall_ms(const Database& db, const std::shared_ptr<ClientAttachment>& a);
// "client@<host id>" for an attached client, else "client@pid<pid>".
std::string client_actor(const std::shared_ptr<ClientAttachment>& a);
// Stored JSON text as JSON (text that is not JSON as a string); null for none.
Json parse_or(const std::optional<std::string>& s);
InstanceState to_state(const store::InstanceRow& r);
// The sampler that decides the traces of instances this client schedules: the attached
// host's, else the process's (the OTEL_TRACES_SAMPLER variables, read once).
Sampler sampler_of(const std::shared_ptr<ClientAttachment>& a);

}  // namespace durable::detail
