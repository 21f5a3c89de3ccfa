// store/opener.hpp — how Database::open finds the store a target names, without the core
// library linking every store's client library.
//
// A target is a SQLite file path, or a PostgreSQL connection string: a libpq URL
// (`postgresql://...`, `postgres://...`) or a libpq key=value string (`host=... dbname=...`).
// The SQLite store is part of libdurable. Other stores live in their own libraries (the
// PostgreSQL one in durable_postgres, which links libpq) and register an opener here from a
// static initializer when they are linked in; the durable_postgres CMake target makes the
// linker keep that initializer (see store/postgres/register.cpp). A program that names a
// PostgreSQL target without linking durable_postgres gets an error saying so.
//
// Thread safety: registration happens during static initialisation; lookups may come from
// any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "durable/database.hpp"
#include "store/store.hpp"

namespace durable::store {

enum class StoreKind { Sqlite, Postgres };

// Which store `target` names (see the file comment).
StoreKind store_kind(const std::string& target);

using StoreOpener = std::function<std::shared_ptr<Store>(const std::string& target, const DatabaseOptions& options)>;

// Makes `opener` the one for `kind`; returns true (for use in static initialisers).
bool register_store_opener(StoreKind kind, StoreOpener opener);
// The opener registered for `kind`, or an empty function.
StoreOpener find_store_opener(StoreKind kind);

}  // namespace durable::store
