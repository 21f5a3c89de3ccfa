// tests/support/postgres_server.hpp — a real PostgreSQL 15 for tests, and a fresh database
// per test.
//
// PostgresServer::shared() is the server every test of a process uses: the one .ci/run
// started, named by DURABLE_TEST_PG_URL (`postgresql://user@127.0.0.1:PORT`, no database),
// or else one this process starts itself (initdb + pg_ctl in a temp dir, on a free port with
// its Unix socket in that dir, as the `postgres` user when running as root) and stops at
// exit. A test that restarts or stops its server makes a private one (PostgresServer own;).
// Binaries come from /usr/lib/postgresql/15/bin (DURABLE_TEST_PG_BIN overrides).
//
// TestDatabase creates a database of its own (CREATE DATABASE with a unique name) and drops it
// when it goes away, so tests run in parallel without seeing each other's rows.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace durable::test {

class PostgresServer {
public:
    // Starts a private server (initdb, pg_ctl start -w). With `password_auth`, TCP logins need
    // a password (scram-sha-256) and the test's own connections use the Unix socket. Throws
    // std::runtime_error saying why it could not.
    explicit PostgresServer(bool password_auth = false);
    ~PostgresServer();
    PostgresServer(const PostgresServer&) = delete;
    PostgresServer& operator=(const PostgresServer&) = delete;

    // The server the tests of this process share.
    static PostgresServer& shared();

    // The URL of database `db` on this server.
    std::string url(const std::string& db = "postgres") const;
    // The URL of database `db` over TCP as `user` with `password`.
    std::string tcp_url(const std::string& db, const std::string& user, const std::string& password) const;
    int port() const { return port_; }

    // pg_ctl restart -m fast / stop -m fast / start: only for a private server.
    void restart();
    void stop();
    void start();

private:
    struct External {};
    explicit PostgresServer(External, std::string base_url);
    void pg_ctl(const std::vector<std::string>& args);

    std::string base_url_;
    std::string dir_;  // empty for a server someone else runs
    bool socket_ = false;  // the test's URLs go through the Unix socket in dir_
    int port_ = 0;
};

class TestDatabase {
public:
    explicit TestDatabase(PostgresServer& server = PostgresServer::shared());
    ~TestDatabase();
    TestDatabase(const TestDatabase&) = delete;
    TestDatabase& operator=(const TestDatabase&) = delete;

    const std::string& name() const { return name_; }
    // The URL to give Database::open.
    std::string url() const { return server_.url(name_); }
    // Runs `sql` on the database and returns the first column of its first row ("" if none).
    std::string scalar(const std::string& sql) const;
    // Runs `sql` (any number of statements).
    void exec(const std::string& sql) const;

private:
    PostgresServer& server_;
    std::string name_;
};

}  // namespace durable::test
