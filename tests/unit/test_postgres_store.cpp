// What only the PostgreSQL store has: choosing it from a target string, clear errors for bad
// input (server down, wrong password, missing database, another program's tables, a newer
// schema), waiting for a server that comes up late, migrating once when many open at once,
// passwords kept out of messages, and the server's clock as the store's clock; a batch whose
// answer is lost after the server committed it (settled by reading), and change-feed rows
// parked by a writer that found the counter locked.
#include <doctest/doctest.h>

#include <durable/durable.hpp>
#include <fmt/format.h>
#include <pqxx/pqxx>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string_view>
#include <vector>
#include <future>
#include <thread>

#include "store/migrations.hpp"
#include "store/opener.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/store.hpp"
#include "support/postgres_server.hpp"
#include "support/store_kinds.hpp"

using namespace durable;
using durable::test::PostgresServer;
using durable::test::TestDatabase;

namespace {

std::string open_error(const std::string& target, const DatabaseOptions& o = {}) {
    try {
        Database::open(target, o);
    } catch (const StoreError& e) {
        return e.what();
    }
    FAIL("opening " << target << " did not fail");
    return {};
}

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// A port nothing listens on (bound and closed: the kernel will not hand it out at once).
int closed_port() {
    PostgresServer& s = PostgresServer::shared();
    return s.port() > 0 ? s.port() + 1 : 1;
}

}  // namespace

TEST_CASE("a target names its store: libpq URLs and key=value strings are PostgreSQL, anything else a file") {
    using store::StoreKind;
    CHECK(store::store_kind("postgresql://u@h:5432/db") == StoreKind::Postgres);
    CHECK(store::store_kind("postgres://h/db?sslmode=disable") == StoreKind::Postgres);
    CHECK(store::store_kind("host=/tmp port=5432 dbname=app") == StoreKind::Postgres);
    CHECK(store::store_kind("  dbname = app") == StoreKind::Postgres);
    CHECK(store::store_kind("durable.db") == StoreKind::Sqlite);
    CHECK(store::store_kind("./a=b.db") == StoreKind::Sqlite);
    CHECK(store::store_kind("/var/lib/durable/prod.db") == StoreKind::Sqlite);
    CHECK(Database::names_server("postgresql://x/y"));
    CHECK(!Database::names_server("x.db"));
}

TEST_CASE("passwords never reach messages") {
    CHECK(store::redact_conninfo("postgresql://app:s3cret@db:5432/x") == "postgresql://app@db:5432/x");
    CHECK(store::redact_conninfo("postgresql://db/x?user=app&password=s3cret&sslmode=require") ==
          "postgresql://db/x?user=app&password=***&sslmode=require");
    CHECK(store::redact_conninfo("host=db password=s3cret dbname=x") == "host=db password=*** dbname=x");
    CHECK(store::redact_conninfo("host=db password='a b' dbname=x") == "host=db password=*** dbname=x");
}

TEST_CASE("Database::open on a URL opens the PostgreSQL store, with the server's clock and its facts") {
    TestDatabase tdb;
    auto db = Database::open(tdb.url());
    auto info = db.info();
    CHECK(info.store == "postgresql");
    CHECK(info.version.rfind("15.", 0) == 0);
    CHECK(info.durability == "synchronous_commit=on");
    CHECK(has(db.describe(), tdb.name()));
    DatabaseOptions relaxed;
    relaxed.fsync_every_commit = false;
    CHECK(Database::open(tdb.url(), relaxed).info().durability == "synchronous_commit=off");

    // The store's clock is the server's: a reading of the server's clock lies between two of
    // the store's (within the round trips, a second at most on a loaded machine).
    auto before = db.clock()->now_ms();
    auto server = std::stoll(tdb.scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"));
    auto after = db.clock()->now_ms();
    CHECK(before <= server + 1'000);
    CHECK(server <= after + 1'000);
}

TEST_CASE("a server that is down at start: a clear error at once, or a wait when asked") {
    auto url = fmt::format("postgresql://postgres@127.0.0.1:{}/postgres", closed_port());
    auto e = open_error(url);
    CHECK(has(e, "cannot reach PostgreSQL"));
    CHECK(has(e, "127.0.0.1"));
    CHECK(has(e, "is the server running"));

    // A server that comes up while open() waits for it.
    PostgresServer own;
    TestDatabase tdb(own);
    own.stop();
    DatabaseOptions o;
    o.connect_wait = std::chrono::seconds(120);
    auto opened = std::async(std::launch::async, [&] { return Database::open(tdb.url(), o); });
    REQUIRE(opened.wait_for(std::chrono::milliseconds(500)) == std::future_status::timeout);  // still waiting
    own.start();
    REQUIRE(opened.wait_for(std::chrono::seconds(120)) == std::future_status::ready);
    auto db = opened.get();
    Client c(db);
    CHECK(c.query(QueryFilter{}).instances.empty());
}

TEST_CASE("wrong password and missing database are told apart, without the password") {
    PostgresServer own(true);
    TestDatabase tdb(own);
    tdb.exec("CREATE ROLE app LOGIN PASSWORD 'right-one'");
    auto wrong = open_error(own.tcp_url(tdb.name(), "app", "wrong-one"));
    CHECK(has(wrong, "refused the login"));
    CHECK(!has(wrong, "wrong-one"));
    auto missing = open_error(own.tcp_url("no_such_db", "app", "right-one"));
    CHECK(has(missing, "no such database"));
    CHECK(has(missing, "no_such_db"));
    CHECK(!has(missing, "right-one"));
    // The right password works (and the role may create the tables).
    tdb.exec("GRANT ALL ON SCHEMA public TO app");
    CHECK_NOTHROW(Database::open(own.tcp_url(tdb.name(), "app", "right-one")));
}

TEST_CASE("a database holding another program's tables is refused, naming them") {
    TestDatabase tdb;
    tdb.exec("CREATE TABLE instances (vm_id integer PRIMARY KEY, zone text); CREATE TABLE hosts (name text)");
    auto e = open_error(tdb.url());
    CHECK(has(e, "hosts, instances"));
    CHECK(has(e, "did not make"));
    CHECK(tdb.scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'durable_schema_migrations'") == "0");
}

TEST_CASE("a schema newer than this build is refused with what to do") {
    TestDatabase tdb;
    { Database::open(tdb.url()); }
    tdb.exec("INSERT INTO durable_schema_migrations (version, name) VALUES (999, '0999_from_the_future')");
    auto e = open_error(tdb.url());
    CHECK(has(e, "schema version 999"));
    CHECK(has(e, "upgrade durable"));
}

TEST_CASE("hosts opening a new database at once migrate it once") {
    TestDatabase tdb;
    std::vector<std::future<void>> opens;
    std::atomic<int> failures{0};
    for (int i = 0; i < 6; ++i) {
        opens.push_back(std::async(std::launch::async, [&] {
            try {
                auto db = Database::open(tdb.url());
                Client(db).query(QueryFilter{});
            } catch (const std::exception& e) {
                MESSAGE(e.what());
                failures++;
            }
        }));
    }
    for (auto& f : opens) REQUIRE(f.wait_for(std::chrono::seconds(120)) == std::future_status::ready);
    CHECK(failures == 0);
    auto known = store::embedded_postgres_migrations().size();
    CHECK(tdb.scalar("SELECT count(*) FROM durable_schema_migrations") == std::to_string(known));
}

TEST_CASE("a read-only open of an unmigrated database says to open it writable once") {
    TestDatabase tdb;
    DatabaseOptions ro;
    ro.read_only = true;
    auto e = open_error(tdb.url(), ro);
    CHECK(has(e, "read-only"));
    CHECK(has(e, "writable"));
}

namespace {

using durable::test::await_write;

// Episode `n` (0, 1, ...) of instance `id`, created leased to "h1": one event at seq n.
store::EpisodeCommit nth_episode(const std::string& id, std::int64_t n, store::Millis now) {
    store::EpisodeCommit e;
    e.instance_id = id;
    e.owner = "h1";
    e.expected_version = n;
    e.now = now;
    e.execution_id = "e-" + id;
    e.status = Status::Running;
    e.lease_expires_at = now + 60'000;
    e.first_seq = n;
    e.events = {fmt::format(R"({{"t":"Step","n":{}}})", n)};
    return e;
}

}  // namespace

TEST_CASE("a writer that finds the change-feed lock held parks its rows and commits without waiting, and they are "
          "numbered in commit order once the lock is free") {
    TestDatabase db;
    auto store = store::open_postgres(db.url());
    const auto now = store->now();
    for (const char* id : {"a", "b"}) {
        store::NewInstance n;
        n.id = id;
        n.name = "orch";
        n.execution_id = std::string("e-") + id;
        n.now = now;
        n.start_event = R"({"t":"ExecutionStarted"})";
        n.start_at = now;
        n.lease_owner = "h1";
        n.lease_expires_at = now + 60'000;
        REQUIRE(await_write([&](store::WriteCallback cb) { store->create_instance(n, std::move(cb)); }).ok);
    }
    const auto head = store->change_feed_head();

    // Another writer (another host) is numbering its rows: it holds the lock until its COMMIT.
    pqxx::connection other(db.url());
    pqxx::work holding(other);
    holding.exec("SELECT seq FROM change_feed_seq FOR UPDATE");

    // These commits return while the lock is held: they did not wait for it.
    for (auto [id, n] : std::vector<std::pair<std::string, std::int64_t>>{{"a", 0}, {"b", 0}, {"a", 1}}) {
        auto r = await_write(
            [&](store::WriteCallback cb) { store->commit_episode(nth_episode(id, n, now), std::move(cb)); });
        REQUIRE(r.ok);
    }
    CHECK(db.scalar("SELECT count(*) FROM change_feed_pending") == "3");
    CHECK(store->read_changes(head, 100).empty());

    holding.abort();
    // Idle with parked rows, the writer numbers them; the wait is bounded.
    std::vector<store::ChangeRow> rows;
    for (int i = 0; i < 1'000 && rows.size() < 3; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        rows = store->read_changes(head, 100);
    }
    REQUIRE(rows.size() == 3);
    for (std::size_t i = 0; i < rows.size(); ++i) CHECK(rows[i].seq == head + 1 + static_cast<std::int64_t>(i));
    CHECK(rows[0].instance_id == "a");
    CHECK(rows[0].first_seq == 0);
    CHECK(rows[1].instance_id == "b");
    CHECK(rows[2].instance_id == "a");
    CHECK(rows[2].first_seq == 1);
    CHECK(db.scalar("SELECT count(*) FROM change_feed_pending") == "0");
}

namespace {

// A TCP relay between the store and the server that can lose one batch's answer: armed, it
// lets the next writer message holding `marker` through, throws the server's answer away and
// closes both sides, as a network that fails just after the server committed. The server ran
// (and committed) the batch; the store cannot know it.
class AnswerLosingRelay {
public:
    explicit AnswerLosingRelay(int server_port) : server_port_(server_port) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(listen_fd_ >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(listen_fd_, 16) == 0);
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port_ = ntohs(a.sin_port);
        accepter_ = std::thread([this] { accept_loop(); });
    }
    ~AnswerLosingRelay() {
        stopping_ = true;
        ::shutdown(listen_fd_, SHUT_RDWR);
        ::close(listen_fd_);
        accepter_.join();
        for (auto& t : pumps_) t.join();
    }
    int port() const { return port_; }
    void arm(std::string marker) {
        std::lock_guard lock(mu_);
        marker_ = std::move(marker);
        armed_ = true;
    }
    bool fired() const { return fired_; }

private:
    void accept_loop() {
        for (;;) {
            int client = ::accept(listen_fd_, nullptr, nullptr);
            if (client < 0) return;
            int server = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = htons(static_cast<std::uint16_t>(server_port_));
            if (::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                ::close(server);
                ::close(client);
                continue;
            }
            pumps_.emplace_back([this, client, server] { pump(client, server); });
        }
    }
    // Relays both ways until either side closes (or the relay stops, polled every 50 ms).
    void pump(int client, int server) {
        bool victim = false;
        char buf[65536];
        while (!stopping_) {
            pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
            if (::poll(fds, 2, 50) <= 0) continue;
            if (fds[0].revents) {
                auto n = ::recv(client, buf, sizeof buf, 0);
                if (n <= 0) break;
                {
                    std::lock_guard lock(mu_);
                    std::string_view got(buf, static_cast<std::size_t>(n));
                    if (armed_ && got.find(marker_) != std::string_view::npos) {
                        armed_ = false;
                        victim = true;
                    }
                }
                if (::send(server, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) break;
            }
            if (fds[1].revents) {
                auto n = ::recv(server, buf, sizeof buf, 0);
                if (n <= 0) break;
                if (victim) {
                    fired_ = true;  // the server answered: it has run the message; the answer is lost
                    break;
                }
                if (::send(client, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) break;
            }
        }
        ::close(client);
        ::close(server);
    }

    int server_port_, listen_fd_ = -1, port_ = 0;
    std::thread accepter_;
    std::vector<std::thread> pumps_;  // used by accepter_ until it ends
    std::atomic<bool> stopping_{false}, fired_{false};
    std::mutex mu_;
    bool armed_ = false;  // guarded by mu_
    std::string marker_;  // guarded by mu_
};

// The server's TCP port, from a test database's URL (`...@127.0.0.1:PORT/db` or `...&port=PORT`).
int server_port(const std::string& url) {
    for (const char* key : {"127.0.0.1:", "port="}) {
        auto at = url.find(key);
        if (at != std::string::npos) return std::atoi(url.c_str() + at + std::strlen(key));
    }
    FAIL("no port in " << url);
    return 0;
}

}  // namespace

TEST_CASE("a batch whose answer is lost after the server committed it is settled by reading the version, never "
          "applied twice") {
    TestDatabase db;
    AnswerLosingRelay relay(server_port(db.url()));
    auto url = fmt::format("postgresql://postgres@127.0.0.1:{}/{}?sslmode=disable", relay.port(), db.name());
    auto store = store::open_postgres(url);
    const auto now = store->now();
    store::NewInstance n;
    n.id = "a";
    n.name = "orch";
    n.execution_id = "e-a";
    n.now = now;
    n.start_event = R"({"t":"ExecutionStarted"})";
    n.start_at = now;
    n.lease_owner = "h1";
    n.lease_expires_at = now + 60'000;
    REQUIRE(await_write([&](store::WriteCallback cb) { store->create_instance(n, std::move(cb)); }).ok);
    auto commit = [&](std::int64_t k) {
        return await_write([&](store::WriteCallback cb) { store->commit_episode(nth_episode("a", k, now), std::move(cb)); });
    };
    REQUIRE(commit(0).ok);

    relay.arm("durable_commit");
    auto r = commit(1);
    CHECK(relay.fired());
    // It landed once: the store reports it made (not a lost lease), and nothing ran twice.
    CHECK(r.ok);
    CHECK(!r.conflict);
    CHECK(r.new_version == 2);
    auto row = store->get_instance("a");
    REQUIRE(row);
    CHECK(row->version == 2);
    CHECK(row->lease_owner == "h1");
    CHECK(store->get_history("a").size() == 2);
    CHECK(db.scalar("SELECT count(*) FROM history WHERE instance_id = 'a'") == "2");
}
