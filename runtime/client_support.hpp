// runtime/client_support.hpp — what the Client's source files share (client.cpp, client_rewind.cpp).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "durable/client.hpp"
#include "store/store.hpp"

namespace durable::detail {

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
