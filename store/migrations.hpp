// store/migrations.hpp — the schema migrations compiled into the library.
//
// migrations/NNNN_verb_object.sql files are embedded at build time (cmake/embed_migrations.cmake)
// and applied in order at open, each in its own transaction, each exactly once even when
// several processes open a new file at the same moment. Applied versions are recorded in
// `schema_migrations`. A landed migration is never edited: a change is a new migration.
#pragma once

#include <string>
#include <vector>

namespace durable::store {

struct Migration {
    int version;
    const char* name;
    const char* sql;
};

// Every embedded migration of the SQLite store (migrations/*.sql), ordered by version.
const std::vector<Migration>& embedded_migrations();
// The PostgreSQL store's (migrations/postgres/*.sql), ordered by version; defined only in the
// durable_postgres library.
const std::vector<Migration>& embedded_postgres_migrations();

}  // namespace durable::store
