// tests/support/store_kinds.hpp — the stores tests run against, so one test covers both.
//
// Each kind owns a fresh database (a SQLite file in a temp dir, or a database of its own on
// the test PostgreSQL server) and knows its Database::open target. Parameterise a test with
// doctest's TEST_CASE_TEMPLATE("...", S, DURABLE_TEST_STORES) and build `S env;` in it; the
// ctest names then end in <sqlite> or <postgres>.
#pragma once

#include <doctest/doctest.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "store/postgres/postgres_store.hpp"
#include "store/store.hpp"
#include "support/postgres_server.hpp"
#include "support/temp_dir.hpp"

namespace durable::test {

// Submits one store write and waits (at most 30 s) for its callback: the write's result.
inline store::WriteResult await_write(const std::function<void(store::WriteCallback)>& submit) {
    auto done = std::make_shared<std::promise<store::WriteResult>>();
    auto f = done->get_future();
    submit([done](const store::WriteResult& r) { done->set_value(r); });
    REQUIRE(f.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    return f.get();
}

struct SqliteKind {
    static constexpr const char* kName = "sqlite";
    TempDir dir;
    std::string target() const { return dir.file("s.db"); }
    std::shared_ptr<store::Store> open(const store::SqliteOptions& o = {}) const {
        return store::open_sqlite(target(), o);
    }
    // A count read through a connection of its own, as another process would see it.
    std::int64_t count(const std::string& sql) const {
        SQLite::Database db(target(), SQLite::OPEN_READONLY);
        SQLite::Statement q(db, sql);
        REQUIRE(q.executeStep());
        return q.getColumn(0).getInt64();
    }
    // The rows of `sql` as text (NULL as ""), through a connection of its own.
    std::vector<std::vector<std::string>> rows(const std::string& sql) const {
        SQLite::Database db(target(), SQLite::OPEN_READONLY);
        db.setBusyTimeout(10'000);
        SQLite::Statement q(db, sql);
        std::vector<std::vector<std::string>> out;
        while (q.executeStep()) {
            std::vector<std::string> row;
            for (int i = 0; i < q.getColumnCount(); ++i) row.push_back(q.getColumn(i).getString());
            out.push_back(std::move(row));
        }
        return out;
    }
    // Runs `sql` through a connection of its own (waiting out the writer's lock).
    void exec(const std::string& sql) const {
        SQLite::Database db(target(), SQLite::OPEN_READWRITE);
        db.setBusyTimeout(10'000);
        db.exec(sql);
    }
    // Holds the write lock from another connection until the returned function is called, so
    // writes queue up behind it and share a transaction.
    std::function<void()> block_writes() const {
        auto db = std::make_shared<SQLite::Database>(target(), SQLite::OPEN_READWRITE);
        db->setBusyTimeout(10'000);  // a host may be inside a write transaction right now
        db->exec("BEGIN IMMEDIATE");
        return [db] { db->exec("ROLLBACK"); };
    }
};

// The PostgreSQL side of a kind: reads and locks on a test database.
struct PostgresOps {
    static std::int64_t count(const TestDatabase& db, const std::string& sql) { return std::stoll(db.scalar(sql)); }
    static std::vector<std::vector<std::string>> rows(const TestDatabase& db, const std::string& sql) {
        pqxx::connection c(db.url());
        pqxx::nontransaction tx(c);
        std::vector<std::vector<std::string>> out;
        for (const auto& r : tx.exec(sql)) {
            std::vector<std::string> row;
            for (const auto& f : r) row.push_back(f.is_null() ? std::string() : f.as<std::string>());
            out.push_back(std::move(row));
        }
        return out;
    }
    // Locks `instances` against writes from another connection until the returned function
    // is called.
    static std::function<void()> block_writes(const TestDatabase& db) {
        auto c = std::make_shared<pqxx::connection>(db.url());
        auto tx = std::make_shared<pqxx::work>(*c);
        tx->exec("LOCK TABLE instances IN EXCLUSIVE MODE");
        return [c, tx] { tx->abort(); };
    }
};

// A database of its own on the shared test server.
struct PostgresKind {
    static constexpr const char* kName = "postgres";
    TestDatabase db;
    std::string target() const { return db.url(); }
    std::shared_ptr<store::Store> open() const { return store::open_postgres(target()); }
    std::int64_t count(const std::string& sql) const { return PostgresOps::count(db, sql); }
    std::vector<std::vector<std::string>> rows(const std::string& sql) const { return PostgresOps::rows(db, sql); }
    std::function<void()> block_writes() const { return PostgresOps::block_writes(db); }
    void exec(const std::string& sql) const { db.exec(sql); }
};

// A database on a server of its own, for tests that restart or stop the server.
struct OwnPostgresKind {
    PostgresServer server;
    TestDatabase db{server};
    std::string target() const { return db.url(); }
    std::shared_ptr<store::Store> open() const { return store::open_postgres(target()); }
    std::int64_t count(const std::string& sql) const { return PostgresOps::count(db, sql); }
    std::vector<std::vector<std::string>> rows(const std::string& sql) const { return PostgresOps::rows(db, sql); }
    std::function<void()> block_writes() const { return PostgresOps::block_writes(db); }
};

}  // namespace durable::test

TYPE_TO_STRING_AS("sqlite", durable::test::SqliteKind);
TYPE_TO_STRING_AS("postgres", durable::test::PostgresKind);

#define DURABLE_TEST_STORES durable::test::SqliteKind, durable::test::PostgresKind
