// Opening and migrating real SQLite files: a fresh file, an upgrade from a pre-lease file,
// files the store must refuse (newer schema, read-only, locked, not a database), and the
// query plans of every statement the store prepares (no claim or query scans a table).
//
// Root ignores file modes, so the read-only cases run in a child process that drops to an
// unprivileged user first when the tests run as root (CI containers do).
#include <doctest/doctest.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "durable/database.hpp"
#include "durable/errors.hpp"
#include "store/migrations.hpp"
#include "store/sqlite/sql.hpp"
#include "store/store.hpp"
#include "support/temp_dir.hpp"

using namespace durable::store;
using durable::test::TempDir;
namespace fs = std::filesystem;

namespace {

int latest_version() {
    return embedded_migrations().back().version;
}

// The migrations recorded in the file, version -> name.
std::map<int, std::string> recorded(const std::string& path) {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    SQLite::Statement q(db, "SELECT version, name FROM schema_migrations ORDER BY version");
    std::map<int, std::string> out;
    while (q.executeStep()) out.emplace(q.getColumn(0).getInt(), q.getColumn(1).getString());
    return out;
}

std::map<int, std::string> all_embedded() {
    std::map<int, std::string> out;
    for (const auto& m : embedded_migrations()) out.emplace(m.version, m.name);
    return out;
}

// The message of the StoreError that opening `path` throws; fails the test when it opens.
std::string open_error(const std::string& path, const SqliteOptions& options = {}) {
    try {
        auto store = open_sqlite(path, options);
    } catch (const durable::StoreError& e) {
        return e.what();
    }
    FAIL("opening '" << path << "' succeeded; it should have been refused");
    return {};
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// Makes a durable database with every migration and closes it again.
void make_database(const std::string& path) {
    auto store = open_sqlite(path);
}

// Runs `attempt` in a child process, as an unprivileged user when we are root (root ignores
// file modes), and returns what it returned. Bounded: the child is killed after 60 s.
std::string as_unprivileged(const std::function<std::string()>& attempt) {
    int fds[2];
    REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        std::string result;
        if (geteuid() == 0 && (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) {
            result = "could not drop privileges";
        } else {
            try {
                result = attempt();
            } catch (const std::exception& e) {
                result = std::string("unexpected exception: ") + e.what();
            }
        }
        ssize_t ignored = write(fds[1], result.data(), result.size());
        (void)ignored;
        _exit(0);
    }
    close(fds[1]);
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fds[0], POLLIN, 0};
        if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        char buf[512];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return out;
}

// What opening `path` as an unprivileged user gives: "opened", or the StoreError's message.
std::string open_unprivileged(const std::string& path, SqliteOptions options = {}) {
    return as_unprivileged([&]() -> std::string {
        try {
            auto store = open_sqlite(path, options);
            return "opened";
        } catch (const durable::StoreError& e) {
            return e.what();
        }
    });
}

std::vector<std::string> query_plan(SQLite::Database& db, const std::string& sql) {
    SQLite::Statement q(db, "EXPLAIN QUERY PLAN " + sql);
    std::vector<std::string> out;
    while (q.executeStep()) out.push_back(q.getColumn(3).getString());
    return out;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += "\n    " + l;
    return out;
}

// A plan line that reads a whole table: "SCAN t" without an index ("SCAN CONSTANT ROW" is the
// single row of an INSERT ... SELECT).
bool is_table_scan(const std::string& detail) {
    // json_each over a bound parameter (the host's names) reads that value, not a table.
    return detail.rfind("SCAN ", 0) == 0 && detail != "SCAN CONSTANT ROW" && !contains(detail, " USING ") &&
           detail.rfind("SCAN json_each VIRTUAL TABLE", 0) != 0;
}

// Every SQL text passed to Connection::stmt() in `file` (adjacent literals joined, the column
// list macro expanded), so the copies below cannot drift from the code.
std::vector<std::string> prepared_statements(const std::string& file) {
    std::ifstream in(file);
    REQUIRE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string src = ss.str();
    const std::string columns_macro = "DURABLE_INSTANCE_COLUMNS";
    const std::string schedule_macro = "DURABLE_SCHEDULE_COLUMNS";
    std::vector<std::string> out;
    for (std::size_t at = src.find("stmt("); at != std::string::npos; at = src.find("stmt(", at + 1)) {
        std::size_t i = at + 5;
        std::string sql;
        for (;;) {
            while (i < src.size() && std::isspace(static_cast<unsigned char>(src[i]))) ++i;
            REQUIRE(i < src.size());
            if (src[i] == '"') {
                std::size_t j = i + 1;
                while (j < src.size() && src[j] != '"') j += src[j] == '\\' ? 2 : 1;
                sql += src.substr(i + 1, j - i - 1);
                i = j + 1;
            } else if (src.compare(i, columns_macro.size(), columns_macro) == 0) {
                sql += DURABLE_INSTANCE_COLUMNS;
                i += columns_macro.size();
            } else if (src.compare(i, schedule_macro.size(), schedule_macro) == 0) {
                sql += DURABLE_SCHEDULE_COLUMNS;
                i += schedule_macro.size();
            } else {
                REQUIRE_MESSAGE(src[i] == ')', "unexpected text in a stmt() call in " << file << ": "
                                                                                  << src.substr(i, 40));
                break;
            }
        }
        out.push_back(sql);
    }
    return out;
}

struct Planned {
    std::string sql;
    const char* scan_ok = nullptr;  // why a full scan is harmless here, if it is
    bool stops_at_limit = true;     // a tolerated scan must read in order and stop at the LIMIT
};

#define COLS DURABLE_INSTANCE_COLUMNS
#define SCOLS DURABLE_SCHEDULE_COLUMNS

// Copies of the statements in store/sqlite/{leases,writes,reads}.cpp.
const std::vector<Planned>& store_statements() {
    static const std::vector<Planned> all = {
        // leases.cpp
        {"UPDATE instances SET lease_owner = ?, lease_expires_at = ?, version = version + 1, "
         "recoveries = recoveries + (lease_owner IS NOT NULL) "
         "WHERE id = ? AND version = ? AND (lease_owner IS NULL OR lease_expires_at < ?) "
         "AND status NOT IN ('Completed', 'Failed', 'Terminated')"},
        {"UPDATE instances SET lease_expires_at = ? WHERE lease_owner = ? AND lease_expires_at >= ?"},
        {"SELECT id FROM instances WHERE lease_owner = ? AND lease_expires_at = ?"},
        {"UPDATE activity_tasks SET lease_expires_at = MAX(lease_expires_at, ?) WHERE lease_owner = ? "
         "AND lease_expires_at >= ?"},
        {"UPDATE instances SET lease_owner = CASE WHEN ? THEN lease_owner ELSE NULL END, "
         "lease_expires_at = 0 WHERE id = ? AND lease_owner = ?"},
        {"UPDATE activity_tasks SET lease_owner = NULL, lease_expires_at = 0 WHERE lease_owner = ? AND ?"},
        {"SELECT i.id, i.version, i.lease_owner IS NOT NULL FROM inbox b JOIN instances i ON i.id = b.instance_id "
         "WHERE b.visible_at <= ? AND (i.lease_owner IS NULL OR i.lease_expires_at < ?) "
         "AND (i.status <> 'Suspended' OR b.control = 1) "
         "AND i.status NOT IN ('Completed', 'Failed', 'Terminated') "
         "AND +i.name IN (SELECT value FROM json_each(?)) "
         "AND (i.orchestration_version IS NULL OR i.name || char(31) || i.orchestration_version IN "
         "(SELECT value FROM json_each(?))) "
         "ORDER BY b.visible_at LIMIT ?"},
        {"SELECT id, version FROM instances WHERE lease_owner IS NOT NULL AND lease_expires_at < ? "
         "AND status NOT IN ('Completed', 'Failed', 'Terminated') "
         "AND +name IN (SELECT value FROM json_each(?)) "
         "AND (orchestration_version IS NULL OR name || char(31) || orchestration_version IN "
         "(SELECT value FROM json_each(?))) ORDER BY lease_expires_at LIMIT ?"},
        // The same two for a host with remote code for every name (store::kAnyName).
        {"SELECT i.id, i.version, i.lease_owner IS NOT NULL FROM inbox b JOIN instances i ON i.id = b.instance_id "
         "WHERE b.visible_at <= ? AND (i.lease_owner IS NULL OR i.lease_expires_at < ?) "
         "AND (i.status <> 'Suspended' OR b.control = 1) "
         "AND i.status NOT IN ('Completed', 'Failed', 'Terminated') "
         "AND (i.orchestration_version IS NULL OR +i.name NOT IN (SELECT value FROM json_each(?)) "
         "OR i.name || char(31) || i.orchestration_version IN (SELECT value FROM json_each(?))) "
         "ORDER BY b.visible_at LIMIT ?"},
        {"SELECT id, version FROM instances WHERE lease_owner IS NOT NULL AND lease_expires_at < ? "
         "AND status NOT IN ('Completed', 'Failed', 'Terminated') "
         "AND (orchestration_version IS NULL OR +name NOT IN (SELECT value FROM json_each(?)) OR "
         "name || char(31) || orchestration_version IN (SELECT value FROM json_each(?))) "
         "ORDER BY lease_expires_at LIMIT ?"},
        {"SELECT b.id, b.instance_id, b.visible_at, b.control, b.event FROM instances i "
         "JOIN inbox b ON b.instance_id = i.id AND b.visible_at <= ? "
         "WHERE i.lease_owner = ? ORDER BY b.id LIMIT ?"},
        {"SELECT id, instance_id, execution_id, task_id, input, attempt, heartbeat_details, trace_parent "
         "FROM activity_tasks WHERE name = ? AND visible_at <= ? AND (lease_owner IS NULL OR lease_expires_at < ?) "
         "ORDER BY visible_at LIMIT ?"},
        {"UPDATE activity_tasks SET lease_owner = ?, lease_expires_at = ?, attempt = attempt + 1 "
         "WHERE id = ? AND (lease_owner IS NULL OR lease_expires_at < ?)"},
        {"DELETE FROM activity_tasks WHERE id = ? AND lease_owner = ?"},
        {"INSERT INTO inbox (instance_id, visible_at, control, event) SELECT ?1, ?2, 0, ?3 "
         "WHERE EXISTS (SELECT 1 FROM instances WHERE id = ?1)"},
        {"SELECT id FROM activity_tasks WHERE lease_owner = ? AND lease_expires_at >= ?"},
        {"UPDATE activity_tasks SET lease_owner = NULL, lease_expires_at = 0 WHERE id = ? AND lease_owner = ?"},
        {"UPDATE activity_tasks SET lease_expires_at = MAX(lease_expires_at, ?), "
         "heartbeat_details = COALESCE(?, heartbeat_details) WHERE id = ? AND lease_owner = ?"},
        {"SELECT 1 FROM activity_tasks WHERE name = ? AND visible_at <= ? "
         "AND (lease_owner IS NULL OR lease_expires_at < ?) LIMIT 1"},
        {"SELECT " COLS " FROM instances WHERE lease_owner IS NOT NULL ORDER BY lease_owner, id LIMIT 10000"},
        {"SELECT h.id, h.hostname, h.pid, h.started_at, h.heartbeat_at, h.stopped_at, "
         "(SELECT COUNT(*) FROM instances i WHERE i.lease_owner = h.id AND i.lease_expires_at >= ?), "
         "h.orchestrations, h.activities, h.lease_ms, h.orchestration_versions "
         "FROM hosts h ORDER BY h.started_at",
         "hosts holds one row per host process that ever started; the lease count per host is an index search",
         false},
        // writes.cpp
        {"INSERT INTO audit_log (at, actor, action, instance_id, detail) VALUES (?, ?, ?, ?, ?)"},
        {"INSERT INTO inbox (instance_id, visible_at, control, event) VALUES (?, ?, ?, ?)"},
        {"INSERT INTO instances (id, name, status, execution_id, input, parent_id, parent_task_id, "
         "created_at, updated_at, version, lease_owner, lease_expires_at, trace_parent, orchestration_version) "
         "VALUES (?, ?, 'Pending', ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"},
        {"INSERT INTO change_feed (at, instance_id, name, status, first_seq, count) "
         "SELECT ?, id, name, status, ?, ? FROM instances WHERE id = ?"},
        {"SELECT status FROM instances WHERE id = ?"},
        {"UPDATE instances SET version = version + 1, status = ?, execution_id = ?, "
         "input = COALESCE(?, input), output = ?, error = ?, custom_status = ?, updated_at = ?, "
         "completed_at = CASE WHEN ? THEN ? ELSE NULL END, "
         "lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END, "
         "lease_expires_at = CASE WHEN ? THEN 0 ELSE MAX(lease_expires_at, ?) END, "
         "recoveries = CASE WHEN ? THEN 0 ELSE recoveries END, "
         "orchestration_version = COALESCE(orchestration_version, ?) "
         "WHERE id = ? AND version = ? AND lease_owner = ?"},
        {"DELETE FROM history WHERE instance_id = ?"},
        {"INSERT INTO history (instance_id, seq, event) VALUES (?, ?, ?)"},
        {"DELETE FROM inbox WHERE instance_id = ?"},
        {"DELETE FROM inbox WHERE id = ?"},
        {"INSERT INTO inbox (instance_id, visible_at, control, event) SELECT ?1, ?2, ?3, ?4 "
         "WHERE EXISTS (SELECT 1 FROM instances WHERE id = ?1)"},
        {"INSERT INTO activity_tasks (instance_id, task_id, name, input, execution_id, visible_at, "
         "created_at, trace_parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"},
        {"DELETE FROM activity_tasks WHERE instance_id = ?"},
        {"DELETE FROM instances WHERE id = ?"},
        {"SELECT id FROM instances WHERE status = ? AND (? IS NULL OR completed_at < ?) LIMIT 100000"},
        {"INSERT INTO hosts (id, hostname, pid, started_at, heartbeat_at, stopped_at, orchestrations, activities, "
         "lease_ms, orchestration_versions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, stopped_at = excluded.stopped_at, "
         "pid = excluded.pid, hostname = excluded.hostname, orchestrations = excluded.orchestrations, "
         "activities = excluded.activities, lease_ms = excluded.lease_ms, "
         "orchestration_versions = excluded.orchestration_versions"},
        {"SELECT status, (SELECT MAX(seq) FROM history WHERE instance_id = ?1) FROM instances WHERE id = ?1"},
        {"UPDATE instances SET status = 'Running', output = NULL, error = NULL, completed_at = NULL, "
         "updated_at = ?, lease_owner = NULL, lease_expires_at = 0, recoveries = 0, version = version + 1 "
         "WHERE id = ? AND status = 'Failed'"},
        // reads.cpp
        {"SELECT " COLS " FROM instances WHERE id = ?"},
        {"SELECT seq, event FROM history WHERE instance_id = ? AND seq >= ? ORDER BY seq LIMIT ?"},
        {"SELECT MAX(seq) FROM history WHERE instance_id = ? AND seq <= ?"},
        {"SELECT id, instance_id, visible_at, control, event FROM inbox WHERE instance_id = ? AND visible_at <= ? "
         "ORDER BY id"},
        {"SELECT MIN(visible_at) FROM inbox WHERE visible_at > ?"},
        {"SELECT count(*) FROM instances WHERE status = ?"},
        {"SELECT at, actor, action, instance_id, detail FROM audit_log WHERE instance_id = ?1 "
         "ORDER BY id DESC LIMIT ?2"},
        {"SELECT at, actor, action, instance_id, detail FROM audit_log ORDER BY id DESC LIMIT ?2",
         "the newest entries in rowid order: the scan stops at the LIMIT"},
        // change_feed.cpp
        {"SELECT seq, at, instance_id, name, status, first_seq, count FROM change_feed WHERE seq > ? "
         "ORDER BY seq LIMIT ?"},
        {"SELECT COALESCE(MAX(seq), 0) FROM change_feed", "MAX of the rowid reads the last row only", false},
        {"SELECT seq, at FROM change_feed ORDER BY seq LIMIT 2000",
         "the oldest rows in rowid order: the scan stops at the LIMIT"},
        {"DELETE FROM change_feed WHERE seq < ?"},
        // schedules.cpp
        {"INSERT INTO schedules (" SCOLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) "
         "ON CONFLICT (id) DO NOTHING"},
        {"UPDATE schedules SET cron = ?, orchestration = ?, input = ?, overlap = ?, catchup_window_ms = ?, "
         "jitter_ms = ?, paused = ?, note = ?, next_fire = ?, last_fire = ?, last_instance_id = ?, "
         "buffered_tick = ?, fired = ?, missed = ?, skipped = ?, updated_at = ?, version = version + 1 "
         "WHERE id = ? AND version = ?"},
        {"DELETE FROM schedules WHERE id = ?"},
        {"SELECT " SCOLS " FROM schedules WHERE id = ?"},
        {"SELECT " SCOLS " FROM schedules ORDER BY id",
         "a list of every schedule, in primary-key order (schedules are few)", false},
        {"SELECT " SCOLS " FROM schedules WHERE paused = 0 AND next_fire <= ? ORDER BY next_fire LIMIT ?"},
        {"SELECT " SCOLS " FROM schedules WHERE buffered_tick IS NOT NULL AND paused = 0 AND "
         "(next_fire IS NULL OR next_fire > ?) ORDER BY buffered_tick LIMIT ?"},
        {"SELECT MIN(next_fire) FROM schedules WHERE paused = 0"},
    };
    return all;
}

// query_instances builds its SQL from the filter's shape (reads.cpp); these are the shapes.
// A time filter is always two-sided there, and keeps the keyset term off the primary key
// (`+id`) when nothing narrower is given.
std::vector<Planned> query_shapes() {
    const std::string base = "SELECT " COLS " FROM instances WHERE 1 = 1";
    const std::string created = " AND created_at >= ? AND created_at < ?";
    const std::vector<std::string> texts = {
        base + " ORDER BY id LIMIT ?",
        base + " AND id > ? ORDER BY id LIMIT ?",
        base + " AND status IN (?) ORDER BY id LIMIT ?",
        base + " AND status IN (?) AND id > ? ORDER BY id LIMIT ?",
        base + " AND status IN (?, ?, ?) ORDER BY id LIMIT ?",
        base + " AND status IN (?, ?, ?) AND id > ? ORDER BY id LIMIT ?",
        base + " AND name = ? ORDER BY id LIMIT ?",
        base + " AND name = ? AND id > ? ORDER BY id LIMIT ?",
        base + " AND status IN (?) AND name = ? ORDER BY id LIMIT ?",
        base + " AND status IN (?) AND name = ? AND id > ? ORDER BY id LIMIT ?",
        base + " AND parent_id = ? ORDER BY id LIMIT ?",
        base + " AND parent_id = ? AND id > ? ORDER BY id LIMIT ?",
        base + created + " ORDER BY id LIMIT ?",
        base + created + " AND +id > ? ORDER BY id LIMIT ?",
        base + " AND status IN (?)" + created + " AND id > ? ORDER BY id LIMIT ?",
        base + " AND status IN (?, ?)" + created + " AND id > ? ORDER BY id LIMIT ?",
        base + " AND name = ?" + created + " AND id > ? ORDER BY id LIMIT ?",
        // The dashboard's: newest first, id prefixes (a primary-key range), name and status.
        base + " ORDER BY id DESC LIMIT ?",
        base + " AND id < ? ORDER BY id DESC LIMIT ?",
        base + " AND status IN (?) AND id < ? ORDER BY id DESC LIMIT ?",
        base + " AND status IN (?) AND name = ? AND id < ? ORDER BY id DESC LIMIT ?",
        base + " AND id >= ? AND id < ? ORDER BY id DESC LIMIT ?",
        base + " AND name = ? AND id >= ? AND id < ? AND id < ? ORDER BY id DESC LIMIT ?",
    };
    std::vector<Planned> out;
    for (const auto& t : texts) out.push_back(Planned{t});
    out[0].scan_ok = "an unfiltered page reads the primary key in order up to the LIMIT";
    out[17].scan_ok = "an unfiltered page reads the primary key in order up to the LIMIT";
    return out;
}

#undef COLS

}  // namespace

TEST_CASE("a fresh file gets every migration, each recorded once") {
    TempDir dir;
    const auto path = dir.file("fresh.db");
    make_database(path);
    CHECK(recorded(path) == all_embedded());
    CHECK(embedded_migrations().size() >= 3);
    int previous = 0;
    for (const auto& m : embedded_migrations()) {
        CHECK(m.version > previous);  // ordered, no duplicates
        previous = m.version;
    }

    SQLite::Database db(path, SQLite::OPEN_READONLY);
    CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
    for (auto column : {"version", "lease_owner", "lease_expires_at", "recoveries"}) {
        CHECK(db.execAndGet(fmt::format("SELECT COUNT(*) FROM pragma_table_info('instances') WHERE name = '{}'", column))
                  .getInt() == 1);
    }
    // Opening again applies nothing more.
    make_database(path);
    CHECK(recorded(path) == all_embedded());
}

TEST_CASE("an empty file is taken as a new database") {
    TempDir dir;
    const auto path = dir.file("empty.db");
    std::ofstream(path).close();
    make_database(path);
    CHECK(recorded(path) == all_embedded());
}

TEST_CASE("a pre-lease file is upgraded and keeps its data") {
    TempDir dir;
    const auto path = dir.file("old.db");
    const auto& first = embedded_migrations().front();
    REQUIRE(first.version == 1);
    {
        // What a durable from before the lease migration left behind.
        SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        db.exec("PRAGMA journal_mode = WAL");
        db.exec("BEGIN");
        db.exec(first.sql);
        db.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at INTEGER NOT NULL)");
        SQLite::Statement rec(db, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 1)");
        rec.bind(1, first.version);
        rec.bind(2, first.name);
        rec.exec();
        db.exec("INSERT INTO instances (id, name, status, execution_id, input, created_at, updated_at) "
                "VALUES ('old-1', 'legacy', 'Running', 'x1', '\"in\"', 1000, 2000), "
                "('old-2', 'legacy', 'Completed', 'x2', NULL, 1000, 3000)");
        db.exec("INSERT INTO history (instance_id, seq, event) VALUES ('old-1', 0, '{\"t\":\"ExecutionStarted\"}'), "
                "('old-1', 1, '{\"t\":\"TaskScheduled\"}')");
        db.exec("INSERT INTO inbox (instance_id, visible_at, control, event) VALUES ('old-1', 1500, 0, '{\"t\":\"TaskCompleted\"}')");
        db.exec("INSERT INTO activity_tasks (instance_id, task_id, name, execution_id, visible_at, created_at) "
                "VALUES ('old-1', 1, 'act', 'x1', 1500, 1500)");
        db.exec("COMMIT");
    }
    REQUIRE(recorded(path) == std::map<int, std::string>{{1, first.name}});

    // A read-only open cannot migrate, and says so.
    auto refused = open_error(path, SqliteOptions{.read_only = true});
    CHECK(contains(refused, "read-only"));
    CHECK(contains(refused, fmt::format("schema version 1 (this build needs {})", latest_version())));

    auto store = open_sqlite(path);
    CHECK(recorded(path) == all_embedded());
    auto row = store->get_instance("old-1");
    REQUIRE(row);
    CHECK(row->name == "legacy");
    CHECK(row->status == durable::Status::Running);
    CHECK(row->input == "\"in\"");
    CHECK(row->updated_at == 2000);
    CHECK(row->version == 0);
    CHECK(!row->lease_owner);
    CHECK(row->lease_expires_at == 0);
    CHECK(row->recoveries == 0);
    CHECK(row->orchestration_version == "");  // it ran unversioned code: it keeps running it
    CHECK(store->get_instance("old-2")->status == durable::Status::Completed);
    auto history = store->get_history("old-1");
    REQUIRE(history.size() == 2);
    CHECK(history[1].event == "{\"t\":\"TaskScheduled\"}");
    CHECK(store->get_inbox("old-1", 2000).size() == 1);

    // The upgraded instance takes part in the lease protocol like a new one.
    auto found = store->find_claimable("h1", {"legacy"}, 2000, 10);
    REQUIRE(found.size() == 1);
    CHECK(found[0].id == "old-1");
    std::promise<WriteResult> claimed;
    auto f = claimed.get_future();
    store->claim_instances(found, "h1", 2000, 12000, [&](const WriteResult& r) { claimed.set_value(r); });
    REQUIRE(f.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    CHECK(f.get().ids == std::vector<std::string>{"old-1"});
    CHECK(store->get_instance("old-1")->version == 1);
    std::promise<std::vector<ClaimedTask>> tasks;
    auto t = tasks.get_future();
    store->claim_tasks({"act"}, "h1", 10000, 10,
                       [&](std::vector<ClaimedTask> got, std::exception_ptr) { tasks.set_value(std::move(got)); });
    REQUIRE(t.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    CHECK(t.get().size() == 1);
}

TEST_CASE("a file with a newer schema is refused, naming both versions") {
    TempDir dir;
    const auto path = dir.file("newer.db");
    make_database(path);
    {
        SQLite::Database db(path, SQLite::OPEN_READWRITE);
        db.exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999_from_the_future', 1)");
    }
    for (bool read_only : {false, true}) {
        CAPTURE(read_only);
        auto message = open_error(path, SqliteOptions{.read_only = read_only});
        CHECK(contains(message, path));
        CHECK(contains(message, "schema version 999"));
        CHECK(contains(message, fmt::format("knows versions up to {}", latest_version())));
        CHECK(contains(message, "upgrade durable"));
    }
    // Through the public API too, and nothing was changed.
    CHECK_THROWS_AS(durable::Database::open(path), durable::StoreError);
    auto expected = all_embedded();
    expected.emplace(999, "0999_from_the_future");
    CHECK(recorded(path) == expected);
}

TEST_CASE("a read-only file gives a clear error") {
    TempDir dir;
    const auto path = dir.file("ro.db");
    make_database(path);
    fs::permissions(dir.path(), fs::perms::all);  // only the file's own mode is in the way
    fs::permissions(path, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);

    auto message = open_unprivileged(path);
    CHECK(contains(message, path));
    CHECK(contains(message, "read-only"));
    CHECK(contains(message, "permissions"));
    // What the message offers works: opened read-only, for inspection.
    CHECK(open_unprivileged(path, SqliteOptions{.read_only = true}) == "opened");
}

TEST_CASE("a read-only directory gives a clear error") {
    TempDir dir;
    const auto existing = dir.file("in-ro-dir.db");
    const auto missing = dir.file("new.db");
    make_database(existing);
    fs::permissions(existing, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                  fs::perms::group_write | fs::perms::others_read | fs::perms::others_write);
    fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                    fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);

    SUBCASE("an existing database, whose WAL files cannot be created") {
        auto message = open_unprivileged(existing);
        CHECK(contains(message, existing));
        CHECK(contains(message, "directory"));
        CHECK(contains(message, "read-only"));
    }
    SUBCASE("a new database") {
        auto message = open_unprivileged(missing);
        CHECK(contains(message, missing));
        CHECK(contains(message, "directory"));
        CHECK(!fs::exists(missing));
    }
    fs::permissions(dir.path(), fs::perms::owner_all);
}

TEST_CASE("a file that is not a SQLite database gives a clear error") {
    TempDir dir;
    SUBCASE("random bytes") {
        const auto path = dir.file("random.db");
        std::mt19937 rng(42);
        std::string bytes(8192, '\0');
        for (auto& b : bytes) b = static_cast<char>(rng());
        std::ofstream(path, std::ios::binary) << bytes;
        auto message = open_error(path);
        CHECK(contains(message, path));
        CHECK(contains(message, "not a SQLite database"));
    }
    SUBCASE("text") {
        const auto path = dir.file("notes.txt");
        std::ofstream(path) << "These are my notes, not a database.\nLine two.\n";
        auto message = open_error(path);
        CHECK(contains(message, path));
        CHECK(contains(message, "not a SQLite database"));
        std::ifstream in(path);
        std::string first;
        std::getline(in, first);
        CHECK(first == "These are my notes, not a database.");  // left alone
    }
}

TEST_CASE("a file locked beyond the busy timeout gives a clear error naming the lock") {
    TempDir dir;
    const auto path = dir.file("locked.db");

    SUBCASE("a durable database (WAL) whose write lock another process holds") {
        make_database(path);
    }
    SUBCASE("a new file in rollback-journal mode held exclusively") {
        // Written (a header, no tables: durable may set it up), in rollback-journal mode.
        SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        db.exec("CREATE TABLE t (x)");
        db.exec("DROP TABLE t");
    }
    SQLite::Database holder(path, SQLite::OPEN_READWRITE);
    holder.exec("BEGIN EXCLUSIVE");

    auto started = std::chrono::steady_clock::now();
    std::string message;
    try {
        auto db = durable::Database::open(path, durable::DatabaseOptions{.busy_timeout_ms = 200});
        FAIL("opening a locked file succeeded");
    } catch (const durable::StoreError& e) {
        message = e.what();
    }
    auto waited = std::chrono::steady_clock::now() - started;
    holder.exec("ROLLBACK");
    CHECK(contains(message, path));
    CHECK(contains(message, "lock"));
    CHECK(contains(message, "busy timeout"));
    CHECK(waited < std::chrono::seconds(10));  // the busy timeout bounded the wait

    // Once the lock is gone the same file opens.
    CHECK_NOTHROW(make_database(path));
    CHECK(recorded(path) == all_embedded());
}

TEST_CASE("the test's copies of the store's SQL match the code") {
    std::set<std::string> copies;
    for (const auto& p : store_statements()) copies.insert(p.sql);
    std::set<std::string> in_code;
    for (auto file : {"leases.cpp", "writes.cpp", "reads.cpp", "change_feed.cpp", "schedules.cpp"}) {
        for (auto& sql : prepared_statements(std::string(DURABLE_SOURCE_DIR) + "/store/sqlite/" + file)) {
            CHECK_MESSAGE(copies.count(sql) == 1, file << " prepares a statement this test does not check; copy it "
                                                       "into store_statements() and check its plan:\n"
                                                       << sql);
            in_code.insert(sql);
        }
    }
    for (const auto& sql : copies) CHECK_MESSAGE(in_code.count(sql) == 1, "no longer in the store's code:\n" << sql);
}

TEST_CASE("no claim, lease or query statement scans a table") {
    TempDir dir;
    const auto path = dir.file("plans.db");
    make_database(path);
    SQLite::Database db(path, SQLite::OPEN_READONLY);

    auto statements = store_statements();
    for (const auto& q : query_shapes()) statements.push_back(q);
    for (const auto& p : statements) {
        auto plan = query_plan(db, p.sql);
        CAPTURE(p.sql);
        CAPTURE(joined(plan));
        for (const auto& line : plan) {
            if (!is_table_scan(line)) continue;
            CHECK_MESSAGE(p.scan_ok != nullptr, "full table scan: " << line);
            if (!p.stops_at_limit) continue;
            for (const auto& other : plan) CHECK_MESSAGE(!contains(other, "TEMP B-TREE"), "scan and sort: " << other);
        }
    }

    // The hot paths use the indexes made for them.
    auto plan_of = [&](const std::string& sql) { return joined(query_plan(db, sql)); };
    // (store_statements() lists them in the code's order: [8] and [9] are the kAnyName forms of [6] and [7].)
    CHECK(contains(plan_of(store_statements()[6].sql), "USING INDEX inbox_by_visible"));       // claimable work
    CHECK(contains(plan_of(store_statements()[7].sql), "USING INDEX instances_orphaned"));     // orphans
    CHECK(contains(plan_of(store_statements()[10].sql), "instances_by_lease_owner"));           // owned inbox
    CHECK(contains(plan_of(store_statements()[10].sql), "USING INDEX inbox_by_instance"));
    CHECK(contains(plan_of(store_statements()[1].sql), "USING INDEX instances_by_lease_owner"));  // renewal
    CHECK(contains(plan_of(store_statements()[11].sql), "USING INDEX activity_tasks_by_name"));    // task claims
    auto by_sql = [&](const std::string& start) {
        for (const auto& p : store_statements()) {
            if (p.sql.rfind(start, 0) == 0) return p.sql;
        }
        FAIL("no statement starts with " << start);
        return std::string();
    };
    // The scheduler's looks: due ticks and buffered ticks, each through its partial index, in order.
    auto due = plan_of(by_sql("SELECT " SCOLS " FROM schedules WHERE paused = 0 AND next_fire <= ?"));
    CHECK(contains(due, "USING INDEX schedules_next_fire"));
    CHECK_FALSE(contains(due, "TEMP B-TREE"));
    auto buffered = plan_of(by_sql("SELECT " SCOLS " FROM schedules WHERE buffered_tick IS NOT NULL"));
    CHECK(contains(buffered, "USING INDEX schedules_buffered_tick"));
    CHECK_FALSE(contains(buffered, "TEMP B-TREE"));
    CHECK(contains(plan_of("SELECT MIN(next_fire) FROM schedules WHERE paused = 0"), "schedules_next_fire"));
    auto shapes = query_shapes();
    CHECK(contains(plan_of(shapes[12].sql), "USING INDEX instances_by_created"));  // a time window
    CHECK(contains(plan_of(shapes[13].sql), "USING INDEX instances_by_created"));  // ... and its next page
    CHECK(contains(plan_of(shapes[20].sql), "USING INDEX instances_by_name_status"));  // the dashboard's name + status
}
