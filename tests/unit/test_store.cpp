// The store contract, run against both stores (a SQLite file in a temp dir, a database of its own
// on the test PostgreSQL server): instance creation, messages, the
// one-transaction episode commit under the lease CAS, history, inbox, purge, queries with
// keyset paging, the lease protocol, and group commit under concurrent writers.
//
// Every write goes through the asynchronous Store interface and is awaited with a bounded
// wait; row counts the interface does not expose are read through a connection of their own
// (what another process would see).
#include <doctest/doctest.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include "durable/errors.hpp"
#include "store/sqlite/connection.hpp"
#include "store/store.hpp"
#include "support/store_kinds.hpp"
#include "support/temp_dir.hpp"

using namespace durable::store;
using durable::test::TempDir;

namespace {

constexpr auto kWait = std::chrono::seconds(30);
constexpr Millis kNow = 1'700'000'000'000;  // a fixed "now": the store takes times as arguments

using durable::test::await_write;

NewInstance new_instance(const std::string& id, const std::string& name = "orch", Millis now = kNow,
                         std::optional<std::string> input = std::string("1")) {
    NewInstance n;
    n.id = id;
    n.name = name;
    n.execution_id = "e-" + id;
    n.input = std::move(input);
    n.now = now;
    n.start_event = R"({"t":"ExecutionStarted"})";
    n.start_at = now;
    return n;
}

WriteResult create(Store& s, NewInstance n) {
    return await_write([&](WriteCallback cb) { s.create_instance(std::move(n), std::move(cb)); });
}

WriteResult send(Store& s, const std::string& id, const std::string& event, Millis visible_at = kNow,
                 std::optional<AuditEntry> audit = std::nullopt) {
    return await_write([&](WriteCallback cb) {
        s.send_message(NewMessage{id, visible_at, false, event}, std::move(audit), std::move(cb));
    });
}

WriteResult claim(Store& s, const std::string& id, std::int64_t version, const std::string& owner,
                  Millis now = kNow, Millis until = kNow + 10'000) {
    return await_write([&](WriteCallback cb) {
        s.claim_instances({Candidate{id, version, false}}, owner, now, until, std::move(cb));
    });
}

// An episode commit that keeps the instance running and its lease.
EpisodeCommit episode(const std::string& id, const std::string& owner, std::int64_t version, Millis now = kNow) {
    EpisodeCommit e;
    e.instance_id = id;
    e.owner = owner;
    e.expected_version = version;
    e.now = now;
    e.execution_id = "e-" + id;
    e.status = durable::Status::Running;
    e.lease_expires_at = now + 10'000;
    return e;
}

WriteResult commit(Store& s, EpisodeCommit e) {
    return await_write([&](WriteCallback cb) { s.commit_episode(std::move(e), std::move(cb)); });
}

// A store of `env` holding instance `id`, created and claimed by `owner` (version 1).
template <class Kind>
std::shared_ptr<Store> store_with_claimed(const Kind& env, const std::string& id, const std::string& owner) {
    auto store = env.open();
    REQUIRE(create(*store, new_instance(id)).ok);
    REQUIRE(claim(*store, id, 0, owner).ids.size() == 1);
    return store;
}


// Claims `id` (at its current version) and commits it finished with `status` at `now`.
void finish(Store& s, const std::string& id, durable::Status status, Millis now = kNow) {
    auto row = s.get_instance(id);
    REQUIRE(row);
    REQUIRE(claim(s, id, row->version, "finisher", now, now + 10'000).ids.size() == 1);
    auto e = episode(id, "finisher", row->version + 1, now);
    e.status = status;
    e.output = R"("done")";
    e.release_lease = true;
    e.events = {R"({"t":"ExecutionCompleted"})"};
    e.first_seq = static_cast<std::int64_t>(s.get_history(id).size());
    auto r = commit(s, std::move(e));
    REQUIRE(r.ok);
}

std::vector<std::int64_t> seqs(const std::vector<HistoryRow>& rows) {
    std::vector<std::int64_t> out;
    for (const auto& r : rows) out.push_back(r.seq);
    return out;
}

std::string error_text(const WriteResult& r) {
    if (!r.error) return {};
    try {
        std::rethrow_exception(r.error);
    } catch (const std::exception& e) {
        return e.what();
    }
}

}  // namespace

TEST_CASE_TEMPLATE("create_instance is idempotent on the id", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();

    auto first = new_instance("a");
    first.actor = "tester";
    auto r1 = create(*store, first);
    CHECK(r1.ok);
    CHECK(r1.ids == std::vector<std::string>{"a"});
    CHECK(r1.inbox_id > 0);

    auto again = new_instance("a", "other", kNow + 5, std::string("2"));
    again.actor = "tester";
    auto r2 = create(*store, again);
    CHECK(r2.ok);
    CHECK(r2.ids.empty());
    CHECK(r2.inbox_id == 0);

    auto row = store->get_instance("a");
    REQUIRE(row);
    CHECK(row->name == "orch");
    CHECK(row->input == "1");
    CHECK(row->status == durable::Status::Pending);
    CHECK(row->created_at == kNow);
    CHECK(row->version == 0);
    CHECK(!row->lease_owner);
    CHECK(store->get_inbox("a", kNow + 1'000).size() == 1);
    CHECK(store->audit_log(std::string("a"), 10).size() == 1);
}

TEST_CASE_TEMPLATE("create_instance with replace_finished replaces a finished instance and leaves a running one", S,
                   DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    REQUIRE(create(*store, new_instance("r")).ids.size() == 1);
    auto replace = new_instance("r", "orch2", kNow + 10, std::string("2"));
    replace.replace_finished = true;
    replace.actor = "tester";
    auto running = create(*store, replace);
    CHECK(running.ids.empty());  // Pending is not finished: left alone
    CHECK(store->get_instance("r")->name == "orch");
    finish(*store, "r", durable::Status::Completed);
    REQUIRE(!store->get_history("r").empty());
    auto r = create(*store, replace);
    CHECK(r.ids == std::vector<std::string>{"r"});
    CHECK(r.count == 1);
    auto row = store->get_instance("r");
    REQUIRE(row);
    CHECK(row->name == "orch2");
    CHECK(row->status == durable::Status::Pending);
    CHECK(row->version == 0);
    CHECK(store->get_history("r").empty());
    CHECK(store->get_inbox("r", kNow + 1'000).size() == 1);  // the new start event only
    CHECK(env.count("SELECT count(*) FROM audit_log WHERE action = 'restart'") == 1);
}

TEST_CASE("the statement cache is keyed by the SQL text, not by where the text lives") {
    TempDir dir;
    auto path = dir.file("s.db");
    open_sqlite(path);  // creates the schema
    durable::store::sqlite::Connection c(path, SqliteOptions{}, false, nullptr);
    // One buffer, two statements: a cache keyed by the address would give the first again.
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "SELECT 1");
    {
        auto s = c.stmt(buffer);
        REQUIRE(s->executeStep());
        CHECK(s->getColumn(0).getInt() == 1);
    }
    std::snprintf(buffer, sizeof buffer, "SELECT 2");
    {
        auto s = c.stmt(buffer);
        REQUIRE(s->executeStep());
        CHECK(s->getColumn(0).getInt() == 2);
    }
    // The same text from another place shares the statement.
    std::string copy = "SELECT 2";
    auto before = c.cached_statements();
    {
        auto s = c.stmt(copy);
        REQUIRE(s->executeStep());
        CHECK(s->getColumn(0).getInt() == 2);
    }
    CHECK(c.cached_statements() == before);
    CHECK(before == 2);
}

TEST_CASE_TEMPLATE("create_instance can create an instance already leased to its host", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    auto n = new_instance("a");
    n.lease_owner = "h1";
    n.lease_expires_at = kNow + 5'000;
    REQUIRE(create(*store, n).ok);
    auto row = store->get_instance("a");
    REQUIRE(row);
    CHECK(row->lease_owner == "h1");
    CHECK(row->lease_expires_at == kNow + 5'000);
    CHECK(store->find_claimable("h2", {"orch"}, kNow, 10).empty());
    CHECK(store->owned_inbox("h1", kNow, 10).size() == 1);
}

TEST_CASE_TEMPLATE("send_message to a missing or finished instance writes nothing", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();

    auto missing = send(*store, "nope", R"({"t":"EventRaised"})", kNow,
                        AuditEntry{kNow, "tester", "raise", std::string("nope"), std::nullopt});
    CHECK(!missing.ok);
    CHECK(missing.conflict);
    CHECK(missing.count == 0);
    CHECK(env.count("SELECT COUNT(*) FROM inbox") == 0);
    CHECK(env.count("SELECT COUNT(*) FROM audit_log") == 0);

    REQUIRE(create(*store, new_instance("a")).ok);
    auto live = send(*store, "a", R"({"t":"EventRaised"})", kNow,
                     AuditEntry{kNow, "tester", "raise", std::string("a"), std::nullopt});
    CHECK(live.ok);
    CHECK(live.count == 1);
    CHECK(store->get_inbox("a", kNow).size() == 2);

    finish(*store, "a", durable::Status::Completed);
    const auto audits = env.count("SELECT COUNT(*) FROM audit_log");
    auto late = send(*store, "a", R"({"t":"EventRaised"})", kNow,
                     AuditEntry{kNow, "tester", "raise", std::string("a"), std::nullopt});
    CHECK(!late.ok);
    CHECK(late.conflict);
    CHECK(late.count == 1);  // it exists, but has finished
    CHECK(store->get_inbox("a", kNow + 100'000).empty());
    CHECK(env.count("SELECT COUNT(*) FROM audit_log") == audits);
}

TEST_CASE_TEMPLATE("a commit whose lease CAS conflicts writes nothing at all", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    auto created = create(*store, new_instance("a"));
    REQUIRE(created.ok);
    REQUIRE(create(*store, new_instance("c")).ok);
    REQUIRE(claim(*store, "a", 0, "h1").ids.size() == 1);  // version 1, owner h1

    // An episode that touches every table a commit can write.
    auto full_episode = [&](const std::string& owner, std::int64_t version) {
        auto e = episode("a", owner, version);
        e.first_seq = 0;
        e.events = {R"({"t":"ExecutionStarted"})", R"({"t":"TaskScheduled","id":0})"};
        e.consumed_inbox = {created.inbox_id};
        e.messages = {NewMessage{"a", kNow + 60'000, false, R"({"t":"TimerFired"})"},
                      NewMessage{"c", kNow, false, R"({"t":"EventRaised"})"}};
        e.new_instances = {new_instance("a:child")};
        e.tasks = {NewTask{"a", "e-a", "act", 0, std::string("{}"), kNow}};
        e.custom_status = R"("busy")";
        e.audit = {AuditEntry{kNow, "h1", "episode", std::string("a"), std::nullopt}};
        return e;
    };
    auto unchanged = [&] {
        auto row = store->get_instance("a");
        REQUIRE(row);
        CHECK(row->version == 1);
        CHECK(row->lease_owner == "h1");
        CHECK(row->status == durable::Status::Pending);
        CHECK(!row->custom_status);
        CHECK(store->get_history("a").empty());
        auto inbox = store->get_inbox("a", kNow + 100'000);
        REQUIRE(inbox.size() == 1);
        CHECK(inbox[0].id == created.inbox_id);
        CHECK(store->get_inbox("c", kNow + 100'000).size() == 1);
        CHECK(!store->get_instance("a:child"));
        CHECK(env.count("SELECT COUNT(*) FROM activity_tasks") == 0);
        CHECK(env.count("SELECT COUNT(*) FROM audit_log") == 0);
    };

    SUBCASE("a stale version") {
        auto r = commit(*store, full_episode("h1", 0));
        CHECK(r.conflict);
        CHECK(!r.ok);
        CHECK(!r.error);
        unchanged();
    }
    SUBCASE("another owner") {
        auto r = commit(*store, full_episode("h2", 1));
        CHECK(r.conflict);
        CHECK(!r.ok);
        unchanged();
    }
    SUBCASE("the right version and owner write everything") {
        auto r = commit(*store, full_episode("h1", 1));
        CHECK(r.ok);
        CHECK(!r.conflict);
        CHECK(r.new_version == 2);
        auto row = store->get_instance("a");
        REQUIRE(row);
        CHECK(row->version == 2);
        CHECK(row->status == durable::Status::Running);
        CHECK(row->custom_status == R"("busy")");
        CHECK(store->get_history("a").size() == 2);
        auto inbox = store->get_inbox("a", kNow + 100'000);
        REQUIRE(inbox.size() == 1);
        CHECK(inbox[0].event == R"({"t":"TimerFired"})");
        CHECK(store->get_inbox("c", kNow).size() == 2);
        CHECK(store->get_instance("a:child"));
        CHECK(env.count("SELECT COUNT(*) FROM activity_tasks") == 1);
        CHECK(env.count("SELECT COUNT(*) FROM audit_log") == 1);
    }
}

TEST_CASE_TEMPLATE("a commit that fails half-way is rolled back whole", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    auto created = create(*store, new_instance("a"));
    REQUIRE(created.ok);
    REQUIRE(claim(*store, "a", 0, "h1").ids.size() == 1);
    auto e = episode("a", "h1", 1);
    e.events = {"{}", "{}"};
    REQUIRE(commit(*store, e).ok);  // seq 0, 1; version 2

    // Passes the CAS, then breaks on history seq 0, which exists already.
    auto bad = episode("a", "h1", 2);
    bad.first_seq = 0;
    bad.events = {"{}"};
    bad.consumed_inbox = {created.inbox_id};
    bad.custom_status = R"("never")";
    auto r = commit(*store, bad);
    CHECK(!r.ok);
    REQUIRE(r.error);
    CHECK_THROWS_AS(std::rethrow_exception(r.error), durable::StoreError);
    auto row = store->get_instance("a");
    REQUIRE(row);
    CHECK(row->version == 2);
    CHECK(!row->custom_status);
    CHECK(store->get_history("a").size() == 2);
    CHECK(store->get_inbox("a", kNow).size() == 1);
}

TEST_CASE_TEMPLATE("history is appended in order across episodes and reset by continue-as-new", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    REQUIRE(create(*store, new_instance("a")).ok);
    REQUIRE(create(*store, new_instance("b")).ok);
    REQUIRE(claim(*store, "a", 0, "h1").ids.size() == 1);
    REQUIRE(claim(*store, "b", 0, "h1").ids.size() == 1);

    auto e1 = episode("a", "h1", 1);
    e1.events = {R"({"n":0})", R"({"n":1})"};
    REQUIRE(commit(*store, e1).ok);
    auto other = episode("b", "h1", 1);
    other.events = {R"({"b":0})"};
    REQUIRE(commit(*store, other).ok);
    auto e2 = episode("a", "h1", 2);
    e2.first_seq = 2;
    e2.events = {R"({"n":2})", R"({"n":3})", R"({"n":4})"};
    REQUIRE(commit(*store, e2).ok);

    auto all = store->get_history("a");
    CHECK(seqs(all) == std::vector<std::int64_t>{0, 1, 2, 3, 4});
    for (const auto& h : all) CHECK(h.event == fmt::format(R"({{"n":{}}})", h.seq));
    CHECK(seqs(store->get_history("a", 2, 2)) == std::vector<std::int64_t>{2, 3});
    CHECK(seqs(store->get_history("a", 4)) == std::vector<std::int64_t>{4});
    CHECK(store->get_history("a", 5).empty());
    CHECK(store->get_history("b").size() == 1);

    auto fresh = episode("a", "h1", 3);
    fresh.reset_history = true;
    fresh.execution_id = "e-a-2";
    fresh.events = {R"({"gen":2})"};
    REQUIRE(commit(*store, fresh).ok);
    auto reset = store->get_history("a");
    REQUIRE(reset.size() == 1);
    CHECK(reset[0].seq == 0);
    CHECK(reset[0].event == R"({"gen":2})");
    CHECK(store->get_instance("a")->execution_id == "e-a-2");
    CHECK(store->get_history("b").size() == 1);
}

TEST_CASE_TEMPLATE("the events of one commit are one history row, read back one by one", S, DURABLE_TEST_STORES) {
    S env;
    auto store = store_with_claimed(env, "a", "h1");
    auto e1 = episode("a", "h1", 1);
    e1.events = {R"({"n":0})", R"({"n":1})", R"({"n":2})"};
    REQUIRE(commit(*store, e1).ok);
    // A newline in an event (JSON whitespace) is kept as a space: the separator stays unique.
    auto e2 = episode("a", "h1", 2);
    e2.first_seq = 3;
    e2.events = {"{\n\"n\": 3}", R"({"n":4})"};
    REQUIRE(commit(*store, e2).ok);
    CHECK(env.count("SELECT COUNT(*) FROM history WHERE instance_id = 'a'") == 2);
    auto all = store->get_history("a");
    REQUIRE(all.size() == 5);
    CHECK(seqs(all) == std::vector<std::int64_t>{0, 1, 2, 3, 4});
    CHECK(all[1].event == R"({"n":1})");
    CHECK(all[3].event == "{ \"n\": 3}");
    CHECK(seqs(store->get_history("a", 1, 1)) == std::vector<std::int64_t>{1});
    CHECK(seqs(store->get_history("a", 2, 10)) == std::vector<std::int64_t>{2, 3, 4});
}

TEST_CASE_TEMPLATE("consumed inbox rows are deleted and the others stay", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    auto created = create(*store, new_instance("a"));
    REQUIRE(created.ok);
    REQUIRE(send(*store, "a", "m1").ok);
    REQUIRE(send(*store, "a", "timer", kNow + 3'600'000).ok);
    auto visible = store->get_inbox("a", kNow);
    REQUIRE(visible.size() == 2);  // the timer is not visible yet
    CHECK(visible[0].id == created.inbox_id);
    CHECK(visible[1].event == "m1");
    CHECK(store->next_visible_after(kNow) == kNow + 3'600'000);

    REQUIRE(claim(*store, "a", 0, "h1").ids.size() == 1);
    auto e = episode("a", "h1", 1);
    e.events = {"{}"};
    e.consumed_inbox = {visible[0].id, visible[1].id};
    REQUIRE(commit(*store, e).ok);
    CHECK(store->get_inbox("a", kNow).empty());
    auto later = store->get_inbox("a", kNow + 7'200'000);
    REQUIRE(later.size() == 1);
    CHECK(later[0].event == "timer");
}

// Ids of the rows, in order.
std::vector<std::int64_t> row_ids(const std::vector<InboxRow>& rows) {
    std::vector<std::int64_t> out;
    for (const auto& r : rows) out.push_back(r.id);
    return out;
}

// The id of the newest inbox row of `id` (send_message does not report it).
std::int64_t newest_row(Store& s, const std::string& id) {
    auto rows = s.get_inbox(id, std::numeric_limits<Millis>::max());
    REQUIRE(!rows.empty());
    return rows.back().id;
}

TEST_CASE_TEMPLATE("owned_inbox_since reads each owned row once: new ids, timers come due, rows given back", S,
                   DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    auto a = create(*store, new_instance("a"));
    REQUIRE(a.ok);
    REQUIRE(create(*store, new_instance("b")).ok);  // not h1's: its rows are never read
    REQUIRE(claim(*store, "a", 0, "h1").ids.size() == 1);
    REQUIRE(send(*store, "a", "timer", kNow + 1'000).ok);
    const auto timer = newest_row(*store, "a");
    REQUIRE(send(*store, "b", "b1").ok);

    InboxCursor cursor;
    auto first = store->owned_inbox_since("h1", kNow, 100, cursor);
    CHECK(row_ids(first) == std::vector<std::int64_t>{a.inbox_id});  // the timer is not visible yet
    // A store without cursors reads everything each time; one with a cursor only what is new.
    auto expect = [&](std::vector<std::int64_t> fresh, std::vector<std::int64_t> all) {
        return cursor.valid ? fresh : all;
    };
    auto again = store->owned_inbox_since("h1", kNow, 100, cursor);
    CHECK(row_ids(again) == expect({}, {a.inbox_id}));

    REQUIRE(send(*store, "a", "m1").ok);
    const auto m1 = newest_row(*store, "a");
    auto next = store->owned_inbox_since("h1", kNow + 10, 100, cursor);
    CHECK(row_ids(next) == expect({m1}, {a.inbox_id, m1}));

    // The timer (an older id) comes due.
    auto due = store->owned_inbox_since("h1", kNow + 1'000, 100, cursor);
    CHECK(row_ids(due) == expect({timer}, {a.inbox_id, timer, m1}));
    CHECK(row_ids(store->owned_inbox_since("h1", kNow + 2'000, 100, cursor)) ==
          expect({}, {a.inbox_id, timer, m1}));

    // A caller that must see rows again moves the cursor back below them.
    if (cursor.valid) cursor.after_id = a.inbox_id - 1;
    CHECK(row_ids(store->owned_inbox_since("h1", kNow + 2'000, 100, cursor)) ==
          std::vector<std::int64_t>{a.inbox_id, timer, m1});

    // Cut short by the limit, the next read goes on where this one stopped.
    REQUIRE(send(*store, "a", "m2").ok);
    const auto m2 = newest_row(*store, "a");
    REQUIRE(send(*store, "a", "m3").ok);
    const auto m3 = newest_row(*store, "a");
    if (cursor.valid) {
        CHECK(row_ids(store->owned_inbox_since("h1", kNow + 2'000, 1, cursor)) == std::vector<std::int64_t>{m2});
        CHECK(row_ids(store->owned_inbox_since("h1", kNow + 2'000, 100, cursor)) == std::vector<std::int64_t>{m3});
    }
    // Rows of an instance the host does not hold are not read; once it holds it, new ones are.
    REQUIRE(claim(*store, "b", 0, "h1").ids.size() == 1);
    REQUIRE(send(*store, "b", "b2").ok);
    const auto b2 = newest_row(*store, "b");
    auto fresh = row_ids(store->owned_inbox_since("h1", kNow + 2'000, 100, cursor));
    CHECK(std::find(fresh.begin(), fresh.end(), b2) != fresh.end());
}

TEST_CASE_TEMPLATE("a terminal commit deletes the inbox and releases the lease", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    auto created = create(*store, new_instance("a"));
    REQUIRE(created.ok);
    REQUIRE(send(*store, "a", "unread").ok);
    REQUIRE(send(*store, "a", "timer", kNow + 60'000).ok);
    REQUIRE(claim(*store, "a", 0, "h1").ids.size() == 1);

    auto e = episode("a", "h1", 1, kNow + 10);
    e.events = {"{}", "{}"};
    e.consumed_inbox = {created.inbox_id};
    e.messages = {NewMessage{"a", kNow + 120'000, false, "late timer to itself"}};
    e.status = durable::Status::Completed;
    e.output = R"("out")";
    e.release_lease = true;
    REQUIRE(commit(*store, e).ok);

    CHECK(store->get_inbox("a", kNow + 1'000'000).empty());
    CHECK(!store->next_visible_after(kNow));
    auto row = store->get_instance("a");
    REQUIRE(row);
    CHECK(row->status == durable::Status::Completed);
    CHECK(row->output == R"("out")");
    CHECK(row->completed_at == kNow + 10);
    CHECK(!row->lease_owner);
    CHECK(row->lease_expires_at == 0);
    CHECK(store->find_claimable("h2", {"orch"}, kNow + 1'000'000, 10).empty());
    CHECK(store->list_leases(kNow).empty());
}

TEST_CASE_TEMPLATE("purge removes finished instances only", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    for (auto id : {"running", "pending", "done1", "done2", "failed"}) REQUIRE(create(*store, new_instance(id)).ok);
    REQUIRE(claim(*store, "running", 0, "h1").ids.size() == 1);
    finish(*store, "done1", durable::Status::Completed, kNow + 1'000);
    finish(*store, "done2", durable::Status::Completed, kNow + 2'000);
    finish(*store, "failed", durable::Status::Failed, kNow + 3'000);

    auto live = await_write([&](WriteCallback cb) { store->purge_instance("running", std::move(cb)); });
    CHECK(live.conflict);
    CHECK(live.count == 0);
    CHECK(store->get_instance("running"));
    auto none = await_write([&](WriteCallback cb) { store->purge_instance("missing", std::move(cb)); });
    CHECK(none.ok);
    CHECK(none.count == 0);

    auto purge = [&](PurgeFilter f) {
        return await_write([&](WriteCallback cb) { store->purge_instances(std::move(f), kNow, std::move(cb)); });
    };
    CHECK(purge(PurgeFilter{{durable::Status::Running, durable::Status::Pending}, std::nullopt}).count == 0);
    CHECK(purge(PurgeFilter{{durable::Status::Completed}, kNow + 1'500}).count == 1);
    CHECK(!store->get_instance("done1"));
    CHECK(store->get_history("done1").empty());
    CHECK(store->get_instance("done2"));

    auto one = await_write([&](WriteCallback cb) { store->purge_instance("done2", std::move(cb)); });
    CHECK(one.ok);
    CHECK(one.count == 1);
    CHECK(purge(PurgeFilter{{}, std::nullopt}).count == 1);  // the failed one
    CHECK(env.count("SELECT COUNT(*) FROM instances") == 2);
    CHECK(env.count("SELECT COUNT(*) FROM history WHERE instance_id IN ('done1', 'done2', 'failed')") == 0);
    CHECK(store->get_instance("running"));
    CHECK(store->get_instance("pending"));
}

TEST_CASE_TEMPLATE("query filters by status, name and creation time and pages by id", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    std::vector<std::string> all;
    for (int i = 0; i < 30; ++i) {
        auto id = fmt::format("q{:03}", i);
        all.push_back(id);
        REQUIRE(create(*store, new_instance(id, i % 2 ? "odd" : "even", kNow + i * 10)).ok);
    }
    for (int i = 0; i < 30; i += 3) finish(*store, all[static_cast<std::size_t>(i)], durable::Status::Completed);

    // Pages through everything matching `f`, `page` at a time, by keyset.
    auto page_through = [&](InstanceFilter f, int page) {
        std::vector<std::string> got;
        f.limit = page;
        for (int guard = 0; guard < 100; ++guard) {
            auto rows = store->query_instances(f);
            for (const auto& r : rows) got.push_back(r.id);
            if (static_cast<int>(rows.size()) < page) break;
            f.after_id = rows.back().id;
        }
        return got;
    };

    CHECK(page_through(InstanceFilter{}, 7) == all);
    CHECK(page_through(InstanceFilter{}, 30) == all);

    InstanceFilter done;
    done.statuses = {durable::Status::Completed};
    auto completed = page_through(done, 4);
    CHECK(completed.size() == 10);
    CHECK(std::is_sorted(completed.begin(), completed.end()));

    InstanceFilter open;
    open.statuses = {durable::Status::Pending, durable::Status::Running};
    CHECK(page_through(open, 6).size() == 20);

    InstanceFilter odd;
    odd.name = "odd";
    auto odds = page_through(odd, 4);
    CHECK(odds.size() == 15);
    CHECK(std::all_of(odds.begin(), odds.end(), [](const std::string& id) { return (std::stoi(id.substr(1)) % 2) == 1; }));

    InstanceFilter odd_done = odd;
    odd_done.statuses = {durable::Status::Completed};
    CHECK(page_through(odd_done, 2) == std::vector<std::string>{"q003", "q009", "q015", "q021", "q027"});

    InstanceFilter window;
    window.created_from = kNow + 100;
    window.created_to = kNow + 200;  // [from, to)
    std::vector<std::string> tens(all.begin() + 10, all.begin() + 20);
    CHECK(page_through(window, 3) == tens);
    InstanceFilter since;
    since.created_from = kNow + 200;
    CHECK(page_through(since, 4) == std::vector<std::string>(all.begin() + 20, all.end()));
    InstanceFilter until;
    until.created_to = kNow + 50;
    CHECK(page_through(until, 2) == std::vector<std::string>(all.begin(), all.begin() + 5));
    InstanceFilter odd_since = since;
    odd_since.name = "odd";
    CHECK(page_through(odd_since, 2) == std::vector<std::string>{"q021", "q023", "q025", "q027", "q029"});

    InstanceFilter nothing;
    nothing.name = "unknown";
    CHECK(store->query_instances(nothing).empty());
    InstanceFilter past_end;
    past_end.after_id = "q029";
    CHECK(store->query_instances(past_end).empty());
}

TEST_CASE_TEMPLATE("find_claimable with kAnyName finds instances of every name, due and orphaned", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    REQUIRE(create(*store, new_instance("a", "written_in_js")).ok);
    REQUIRE(create(*store, new_instance("b", "orch")).ok);
    const std::vector<OrchestrationCode> any{OrchestrationCode(std::string(kAnyName))};
    auto found = store->find_claimable("h1", any, kNow, 10);
    std::vector<std::string> ids;
    for (auto& c : found) ids.push_back(c.id);
    std::sort(ids.begin(), ids.end());
    CHECK(ids == std::vector<std::string>{"a", "b"});
    CHECK(store->find_claimable("h1", {"orch"}, kNow, 10).size() == 1);  // a name list still filters

    // Claimed by h1, then left behind: found again as orphaned, whatever its name.
    CHECK(claim(*store, "a", 0, "h1", kNow, kNow + 1'000).ids == std::vector<std::string>{"a"});
    auto orphans = store->find_claimable("h2", any, kNow + 2'000, 10);
    bool a_orphaned = false;
    for (auto& c : orphans) a_orphaned |= c.id == "a" && c.orphaned;
    CHECK(a_orphaned);
}

TEST_CASE_TEMPLATE("find_claimable with kAnyName and the host's own code skips versions of its names it lacks", S,
                   DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    auto versioned = [](const std::string& id, const std::string& name, std::optional<std::string> version) {
        auto n = new_instance(id, name);
        n.orchestration_version = std::move(version);
        return n;
    };
    REQUIRE(create(*store, versioned("js", "written_in_js", std::nullopt)).ok);
    REQUIRE(create(*store, versioned("v1", "orch", std::string("1"))).ok);
    REQUIRE(create(*store, versioned("v2", "orch", std::string("2"))).ok);  // a version this host lacks
    REQUIRE(create(*store, versioned("new", "orch", std::nullopt)).ok);      // no version yet: any host
    // A `durable serve` host with remote code for every name and C++ code for orch version 1.
    const std::vector<OrchestrationCode> code{OrchestrationCode(std::string(kAnyName)), OrchestrationCode("orch", "1")};
    auto ids_of = [](const std::vector<durable::store::Candidate>& found) {
        std::vector<std::string> ids;
        for (auto& c : found) ids.push_back(c.id);
        std::sort(ids.begin(), ids.end());
        return ids;
    };
    CHECK(ids_of(store->find_claimable("h1", code, kNow, 10)) == std::vector<std::string>{"js", "new", "v1"});

    // Left behind by a host that had version 2: still not this host's.
    CHECK(claim(*store, "v2", 0, "h2", kNow, kNow + 1'000).ids == std::vector<std::string>{"v2"});
    CHECK(claim(*store, "v1", 0, "h2", kNow, kNow + 1'000).ids == std::vector<std::string>{"v1"});
    auto orphans = store->find_claimable("h1", code, kNow + 2'000, 10);
    bool v1_orphaned = false, v2_found = false;
    for (auto& c : orphans) {
        v1_orphaned |= c.id == "v1" && c.orphaned;
        v2_found |= c.id == "v2";
    }
    CHECK(v1_orphaned);
    CHECK_FALSE(v2_found);
    // kAnyName alone still takes every version.
    const std::vector<OrchestrationCode> any{OrchestrationCode(std::string(kAnyName))};
    CHECK(ids_of(store->find_claimable("h1", any, kNow + 2'000, 10)) ==
          std::vector<std::string>{"js", "new", "v1", "v2"});
}

TEST_CASE_TEMPLATE("claims are a CAS on the version and renewal extends the lease without changing it", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    REQUIRE(create(*store, new_instance("a")).ok);

    auto found = store->find_claimable("h1", {"orch"}, kNow, 10);
    REQUIRE(found.size() == 1);
    CHECK(found[0].id == "a");
    CHECK(found[0].version == 0);
    CHECK(!found[0].orphaned);

    CHECK(claim(*store, "a", 0, "h1", kNow, kNow + 1'000).ids == std::vector<std::string>{"a"});
    CHECK(claim(*store, "a", 0, "h2", kNow, kNow + 1'000).ids.empty());  // the version moved on
    CHECK(claim(*store, "a", 1, "h2", kNow, kNow + 1'000).ids.empty());  // the lease is held
    CHECK(store->find_claimable("h2", {"orch"}, kNow + 500, 10).empty());
    CHECK(store->owned_inbox("h1", kNow, 10).size() == 1);
    CHECK(store->owned_inbox("h2", kNow, 10).empty());

    auto renewed = await_write([&](WriteCallback cb) { store->renew_leases("h1", kNow + 500, kNow + 5'000, std::move(cb)); });
    CHECK(renewed.ids == std::vector<std::string>{"a"});
    auto row = store->get_instance("a");
    REQUIRE(row);
    CHECK(row->version == 1);
    CHECK(row->lease_expires_at == kNow + 5'000);
    CHECK(store->list_leases(kNow).size() == 1);

    // h1 goes silent; past the lease, h2 finds the instance left behind and takes it over.
    auto orphans = store->find_claimable("h2", {"orch"}, kNow + 6'000, 10);
    REQUIRE(orphans.size() == 1);
    CHECK(orphans[0].orphaned);
    CHECK(claim(*store, "a", 1, "h2", kNow + 6'000, kNow + 16'000).ids.size() == 1);
    row = store->get_instance("a");
    CHECK(row->lease_owner == "h2");
    CHECK(row->recoveries == 1);
    auto late_renewal = await_write([&](WriteCallback cb) { store->renew_leases("h1", kNow + 6'000, kNow + 20'000, std::move(cb)); });
    CHECK(late_renewal.ids.empty());
    auto fenced = commit(*store, episode("a", "h1", 1, kNow + 6'000));
    CHECK(fenced.conflict);  // the paused host's late commit is harmless

    auto freed = await_write([&](WriteCallback cb) { store->release_leases("h2", {"a"}, false, std::move(cb)); });
    CHECK(freed.count == 1);
    row = store->get_instance("a");
    CHECK(!row->lease_owner);
    found = store->find_claimable("h3", {"orch"}, kNow + 6'000, 10);
    REQUIRE(found.size() == 1);
    CHECK(!found[0].orphaned);
}

TEST_CASE_TEMPLATE("group commit: concurrent writes from several threads are all durable and every callback runs", S, DURABLE_TEST_STORES) {
    S env;
    constexpr int kThreads = 4, kPerThread = 150;
    std::mutex mu;
    std::condition_variable cv;
    int callbacks = 0;          // guarded by mu
    int failures = 0;           // guarded by mu
    {
        auto store = env.open();
        auto on_done = [&](const WriteResult& r) {
            {
                std::lock_guard lock(mu);
                ++callbacks;
                if (!r.ok) ++failures;
            }
            cv.notify_all();
        };
        std::vector<std::thread> writers;
        for (int t = 0; t < kThreads; ++t) {
            writers.emplace_back([&, t] {
                for (int i = 0; i < kPerThread; ++i) {
                    auto id = fmt::format("t{}-{:04}", t, i);
                    store->create_instance(new_instance(id), on_done);
                    // Queued after the create by the same thread, so it finds the instance.
                    store->send_message(NewMessage{id, kNow, false, "ping"}, std::nullopt, on_done);
                }
            });
        }
        for (auto& w : writers) w.join();
        std::unique_lock lock(mu);
        REQUIRE(cv.wait_for(lock, kWait, [&] { return callbacks == 2 * kThreads * kPerThread; }));
        CHECK(failures == 0);
        lock.unlock();
        auto stats = store->stats();
        CHECK(stats.ops >= 2 * kThreads * kPerThread);
        CHECK(stats.commits >= 1);
        CHECK(stats.commits <= stats.ops);
    }
    // The store is gone: what the callbacks promised is in the file.
    CHECK(env.count("SELECT COUNT(*) FROM instances") == kThreads * kPerThread);
    CHECK(env.count("SELECT COUNT(*) FROM inbox") == 2 * kThreads * kPerThread);
    auto reopened = env.open();
    CHECK(reopened->get_inbox("t3-0149", kNow).size() == 2);
}

TEST_CASE_TEMPLATE("a write that throws inside a batch does not take the other writes down", S, DURABLE_TEST_STORES) {
    S env;
    auto store = store_with_claimed(env, "a", "h1");
    auto e = episode("a", "h1", 1);
    e.events = {"{}"};
    REQUIRE(commit(*store, e).ok);  // version 2, history seq 0

    // Hold the write lock from another connection so the writes below queue up and share
    // a transaction: whatever the first batch takes, the bad write shares it with a good one.
    auto unblock = env.block_writes();

    std::vector<std::future<WriteResult>> results;
    auto submit = [&](const std::function<void(WriteCallback)>& f) {
        auto p = std::make_shared<std::promise<WriteResult>>();
        results.push_back(p->get_future());
        f([p](const WriteResult& r) { p->set_value(r); });
    };
    submit([&](WriteCallback cb) { store->create_instance(new_instance("x"), std::move(cb)); });
    auto bad = episode("a", "h1", 2);
    bad.events = {"{}"};  // seq 0 exists: the insert fails after the CAS succeeded
    bad.custom_status = R"("never")";
    submit([&](WriteCallback cb) { store->commit_episode(bad, std::move(cb)); });
    submit([&](WriteCallback cb) { store->create_instance(new_instance("y"), std::move(cb)); });
    submit([&](WriteCallback cb) { store->send_message(NewMessage{"a", kNow, false, "hello"}, std::nullopt, std::move(cb)); });
    submit([&](WriteCallback cb) { store->create_instance(new_instance("z"), std::move(cb)); });
    unblock();

    std::vector<WriteResult> r;
    for (auto& f : results) {
        REQUIRE(f.wait_for(kWait) == std::future_status::ready);
        r.push_back(f.get());
    }
    CHECK(r[0].ok);
    CHECK(!r[1].ok);
    CHECK(!r[1].conflict);
    REQUIRE(r[1].error);
    CHECK_THROWS_AS(std::rethrow_exception(r[1].error), durable::StoreError);
    auto text = error_text(r[1]);
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    CHECK(text.find("unique") != std::string::npos);
    CHECK(r[2].ok);
    CHECK(r[3].ok);
    CHECK(r[4].ok);

    auto row = store->get_instance("a");
    REQUIRE(row);
    CHECK(row->version == 2);
    CHECK(!row->custom_status);
    CHECK(store->get_history("a").size() == 1);
    CHECK(store->get_inbox("a", kNow).size() == 2);  // the start event and "hello"
    for (auto id : {"x", "y", "z"}) CHECK(store->get_instance(id));
    // Later writes still go through.
    CHECK(create(*store, new_instance("after")).ok);
}

TEST_CASE("a reader that never finishes does not stall writes behind the idle checkpoint") {
    // The idle checkpoint (TRUNCATE) waits for readers while holding the write lock; a reader
    // in a stopped process held every write of this store for the busy timeout. With a busy
    // timeout of 10 minutes, a write that goes through while the reader still holds its
    // snapshot shows the checkpoint gave up instead.
    TempDir dir;
    const auto path = dir.file("s.db");
    SqliteOptions options;
    options.busy_timeout_ms = 600'000;
    auto store = open_sqlite(path, options);
    REQUIRE(create(*store, new_instance("a")).ok);

    SQLite::Database reader(path, SQLite::OPEN_READONLY);
    reader.exec("BEGIN");
    CHECK(reader.execAndGet("SELECT COUNT(*) FROM instances").getInt() == 1);  // holds its snapshot
    std::this_thread::sleep_for(std::chrono::milliseconds(600));  // idle: the checkpoint has started

    auto done = std::make_shared<std::promise<WriteResult>>();
    auto f = done->get_future();
    store->create_instance(new_instance("b"), [done](const WriteResult& r) { done->set_value(r); });
    REQUIRE(f.wait_for(kWait) == std::future_status::ready);  // the reader still holds its snapshot
    CHECK(f.get().ok);
    reader.exec("COMMIT");
}

TEST_CASE_TEMPLATE("flush waits for every write submitted before it", S, DURABLE_TEST_STORES) {
    S env;
    auto store = env.open();
    std::atomic<int> done{0};
    for (int i = 0; i < 50; ++i) {
        store->create_instance(new_instance(fmt::format("f{:02}", i)), [&](const WriteResult& r) {
            if (r.ok) done.fetch_add(1);
        });
    }
    store->flush();
    CHECK(done.load() == 50);
    CHECK(env.count("SELECT COUNT(*) FROM instances") == 50);
}
