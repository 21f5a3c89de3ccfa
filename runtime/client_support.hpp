// runtime/client_support.hpp — what client.cpp and client_async.cpp share: the clock a
// client's writes take their times from, the actor its audit records name, and the
// conversion of an instance row to the public InstanceState.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "durable/client.hpp"
#include "store/store.hpp"

namespace durable::detail {

// The attached host's clock, else the database's (the server's for PostgreSQL): the clock
// lease and timer times are compared in.
std::int64_t client_wall_ms(const Database& db, const std::shared_ptr<ClientAttachment>& a);
// "client@<host id>" for an attached client, else "client@pid<pid>".
std::string client_actor(const std::shared_ptr<ClientAttachment>& a);
InstanceState to_state(const store::InstanceRow& r);

}  // namespace durable::detail
