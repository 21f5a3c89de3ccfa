// Connections, error classification and migrations of the PostgreSQL store.
#include "store/postgres/connect.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "store/migrations.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/postgres/statements.hpp"

namespace durable::store::postgres {

bool transient_sqlstate(const std::string& s) {
    return s.rfind("08", 0) == 0 || s == "40001" || s == "40P01" || s == "57P01" || s == "57P02" || s == "57P03" ||
           s == "53300";
}

bool connection_gone_sqlstate(const std::string& s) {
    return s.rfind("08", 0) == 0 || s == "57P01" || s == "57P02" || s == "57P03";
}

std::string with_connect_timeout(const std::string& conninfo) {
    if (conninfo.find("connect_timeout") != std::string::npos) return conninfo;
    bool url = conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0;
    if (!url) return conninfo + " connect_timeout=5";
    return conninfo + (conninfo.find('?') == std::string::npos ? "?" : "&") + "connect_timeout=5";
}

namespace {

bool contains(const std::string& s, const char* part) {
    return s.find(part) != std::string::npos;
}

// Turns libpq's connect failure into an error that says what to do.
[[noreturn]] void connect_failed(const std::string& conninfo, const std::string& msg) {
    auto where = redact_conninfo(conninfo);
    std::string m = msg;
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    if (contains(m, "password authentication failed") || contains(m, "no password supplied") ||
        contains(m, "authentication failed")) {
        throw StoreError(fmt::format("PostgreSQL at {} refused the login ({}); check the user and password in the URL, "
                                     "PGPASSWORD or ~/.pgpass",
                                     where, m));
    }
    if (contains(m, "does not exist") && contains(m, "database")) {
        throw StoreError(fmt::format("PostgreSQL at {} has no such database ({}); create it first (createdb NAME, or "
                                     "CREATE DATABASE NAME) or name an existing one",
                                     where, m));
    }
    if (contains(m, "role") && contains(m, "does not exist")) {
        throw StoreError(fmt::format("PostgreSQL at {} has no such user ({}); create the role or use another user",
                                     where, m));
    }
    throw Transient(fmt::format("cannot reach PostgreSQL at {} ({}); is the server running and listening there? "
                                "(a host can wait for it: DatabaseOptions::connect_wait, or --wait-for-db)",
                                where, m));
}

}  // namespace

std::shared_ptr<pqxx::connection> connect(const std::string& conninfo, Role role, bool synchronous_commit) {
    std::shared_ptr<pqxx::connection> c;
    try {
        c = std::make_shared<pqxx::connection>(with_connect_timeout(conninfo));
    } catch (const pqxx::broken_connection& e) {
        connect_failed(conninfo, e.what());
    } catch (const pqxx::sql_error& e) {
        connect_failed(conninfo, e.what());
    }
    try {
        {
            pqxx::nontransaction tx(*c);
            // Generic plans: every statement of the store is a key lookup or a short scan whose
            // plan does not depend on its arguments, and planning the writer's CTEs anew for
            // each call (PostgreSQL's custom plans) costs more than running them.
            tx.exec(fmt::format("SET standard_conforming_strings = on; SET client_encoding = 'UTF8'; "
                                "SET application_name = 'durable'; SET synchronous_commit = {}; "
                                "SET plan_cache_mode = force_generic_plan",
                                synchronous_commit ? "on" : "off"));
            if (role == Role::Writer) {
                // The writer is never idle inside a transaction for more than the moment
                // between a batch's results and its COMMIT. A host stopped there (SIGSTOP, a
                // debugger) would hold its row locks, and so its instances, from every other
                // host: the server ends such a session, the transaction rolls back, and the
                // host finds out on waking (an unknown COMMIT outcome, settled by reading).
                tx.exec("SET idle_in_transaction_session_timeout = '1s'");
                // Where a batch's change-feed rows wait for their seqs (statements.cpp). Every
                // batch empties it (durable_number_changes deletes what it moves; a failed batch
                // rolls its rows back), so it keeps its rows over COMMIT: ON COMMIT DELETE ROWS
                // would truncate it at every commit (a new file, its TOAST index rebuilt: ~8% of
                // the writer's CPU in W1). The commit thread truncates it now and then instead.
                tx.exec("CREATE TEMP TABLE pending_changes (ord BIGSERIAL, at BIGINT, instance_id TEXT, name TEXT, "
                        "status TEXT, first_seq BIGINT, count BIGINT)");
                for (const auto& s : write_statements()) tx.exec(fmt::format("PREPARE {} AS {}", s.name, s.sql));
                for (const auto& s : schedule_write_statements()) {
                    tx.exec(fmt::format("PREPARE {} AS {}", s.name, s.sql));
                }
            }
        }
        if (role == Role::Reader) {
            for (const auto& s : read_statements()) c->prepare(s.name, s.sql);
        }
    } catch (const pqxx::broken_connection& e) {
        connect_failed(conninfo, e.what());
    } catch (const pqxx::sql_error& e) {
        if (transient_sqlstate(e.sqlstate())) connect_failed(conninfo, e.what());
        // A statement that does not prepare: the schema is not this build's (checked at open).
        throw StoreError(fmt::format("PostgreSQL at {}: preparing the store's statements failed ({}); is the "
                                     "database migrated by this version of durable?",
                                     redact_conninfo(conninfo), e.what()));
    }
    return c;
}

void migrate(pqxx::connection& c, const std::string& where, bool read_only) {
    const auto& migrations = embedded_postgres_migrations();
    const int known = migrations.empty() ? 0 : migrations.back().version;
    pqxx::work tx(c);
    // Held until this transaction ends: hosts starting at once queue here and migrate once.
    tx.exec("SELECT pg_advisory_xact_lock(hashtext('durable.schema_migrations'))");
    bool have_table = !tx.exec("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() "
                               "AND tablename = 'durable_schema_migrations'")
                           .empty();
    int current = 0;
    if (have_table) {
        current = tx.exec("SELECT COALESCE(MAX(version), 0) FROM durable_schema_migrations")[0][0].as<int>();
    } else {
        // Not ours yet: it must not hold tables of the same names made by another program.
        auto clash = tx.exec(
            "SELECT string_agg(tablename, ', ' ORDER BY tablename) FROM pg_catalog.pg_tables "
            "WHERE schemaname = current_schema() AND tablename IN ('instances', 'history', 'inbox', "
            "'activity_tasks', 'hosts', 'audit_log')");
        if (!clash[0][0].is_null()) {
            throw StoreError(fmt::format(
                "the database at {} already has tables named {} that durable did not make (it has no "
                "durable_schema_migrations table); give durable an empty database of its own, or a schema of its own "
                "(options=-csearch_path=NAME)",
                where, clash[0][0].as<std::string>()));
        }
    }
    if (current > known) {
        throw StoreError(fmt::format("the database at {} has schema version {}, but this build of durable knows "
                                     "versions up to {}; upgrade durable to open it",
                                     where, current, known));
    }
    if (read_only) {
        if (current < known) {
            throw StoreError(fmt::format("the database at {} has schema version {} (this build needs {}) and is open "
                                         "read-only; open it writable once to migrate it",
                                         where, current, known));
        }
        return;
    }
    if (current == known) return;  // the transaction ends, and the lock with it
    if (!have_table) {
        tx.exec("CREATE TABLE durable_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
    }
    for (const auto& m : migrations) {
        if (m.version <= current) continue;
        tx.exec(m.sql);
        tx.exec(fmt::format("INSERT INTO durable_schema_migrations (version, name) VALUES ({}, {})", m.version,
                            literal(m.name)));
        spdlog::info("store: applied migration {} to {}", m.name, where);
    }
    tx.commit();
}

}  // namespace durable::store::postgres
