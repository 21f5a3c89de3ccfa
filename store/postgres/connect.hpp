// store/postgres/connect.hpp — connecting to PostgreSQL, telling transient failures from the
// others, and the migrations (applied under an advisory lock).
#pragma once

#include <chrono>
#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "durable/errors.hpp"

namespace durable::store::postgres {

// The server is unreachable or restarting, or a transaction lost a race it may win when
// tried again (serialization failure, deadlock): worth retrying.
class Transient : public StoreError {
public:
    using StoreError::StoreError;
};

// True for SQLSTATEs worth retrying: connection exceptions (08), serialization failure and
// deadlock (40001, 40P01), admin / crash shutdown and "starting up" (57P01-57P03), too many
// connections (53300).
bool transient_sqlstate(const std::string& state);
// True for the states after which the connection is gone (57P01-57P03, 08*).
bool connection_gone_sqlstate(const std::string& state);

// `conninfo` with connect_timeout added when it has none, so no connect waits forever.
std::string with_connect_timeout(const std::string& conninfo);

enum class Role { Writer, Reader, Listener, Admin };

// Opens a connection and prepares it for `role` (session settings, prepared statements).
// Throws Transient when the server cannot be reached now, StoreError when retrying cannot
// help (authentication, missing database), each naming the server and what to do.
std::shared_ptr<pqxx::connection> connect(const std::string& conninfo, Role role, bool synchronous_commit);

// Applies the migrations of migrations/postgres/ under a transaction-scoped advisory lock, so
// hosts starting at once migrate once. Refuses a newer schema and a database holding another
// program's tables. `read_only`: only checks that the schema is current.
void migrate(pqxx::connection& c, const std::string& where, bool read_only);

}  // namespace durable::store::postgres
