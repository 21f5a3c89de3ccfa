// The lease protocol at the store level, in one process, with explicit times: the claim CAS
// (a lost race is a cheap "not claimed"), renewal (expiry only, never the version; refused
// after a takeover), the fenced episode commit (a stale version or another owner writes
// nothing at all), release (freed or orphaned) and the recovery count of takeovers.
//
// Times are arguments of the store, so nothing here depends on the clock or on timing.
// Every case runs on both stores; row counts the interface does not expose are read through a
// connection of their own.
#include <doctest/doctest.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <future>
#include <memory>

#include "store/store.hpp"
#include "support/store_kinds.hpp"

using namespace durable::store;
using durable::Status;

namespace {

constexpr Millis kT = 1'800'000'000'000;  // "now" at the start of each case
constexpr Millis kLease = 1'000;

using durable::test::await_write;

template <class Kind>
struct Fixture {
    Kind env;
    std::shared_ptr<Store> store = env.open();
    std::string id = "0190a000-0000-7000-8000-000000000001";

    Fixture() {
        NewInstance n;
        n.id = id;
        n.name = "orch";
        n.execution_id = "e1";
        n.now = kT;
        n.start_event = R"({"t":"ExecutionStarted"})";
        n.start_at = kT;
        auto r = await_write([&](WriteCallback cb) { store->create_instance(n, std::move(cb)); });
        REQUIRE(r.ok);
    }

    WriteResult claim(const std::string& owner, std::int64_t version, Millis now) {
        return await_write([&](WriteCallback cb) {
            store->claim_instances({Candidate{id, version, false}}, owner, now, now + kLease, std::move(cb));
        });
    }
    WriteResult renew(const std::string& owner, Millis now) {
        return await_write([&](WriteCallback cb) { store->renew_leases(owner, now, now + kLease, std::move(cb)); });
    }
    WriteResult release(const std::string& owner, bool orphan) {
        return await_write([&](WriteCallback cb) { store->release_leases(owner, {id}, orphan, std::move(cb)); });
    }
    EpisodeCommit episode(const std::string& owner, std::int64_t expected_version, Millis now) {
        EpisodeCommit c;
        c.instance_id = id;
        c.owner = owner;
        c.expected_version = expected_version;
        c.now = now;
        c.first_seq = static_cast<std::int64_t>(store->get_history(id).size());
        c.events = {R"({"t":"ExecutionStarted"})", R"({"t":"TaskScheduled","id":0})"};
        for (const auto& row : store->get_inbox(id, now)) c.consumed_inbox.push_back(row.id);
        c.messages.push_back(NewMessage{id, now + 60'000, false, R"({"t":"TimerFired","id":1})"});
        c.tasks.push_back(NewTask{id, "e1", "work", 0, std::nullopt, now});
        c.status = Status::Running;
        c.execution_id = "e1";
        c.audit.push_back(AuditEntry{now, owner, "episode", id, std::nullopt});
        return c;
    }
    WriteResult commit(EpisodeCommit c) {
        return await_write([&](WriteCallback cb) { store->commit_episode(std::move(c), std::move(cb)); });
    }
    InstanceRow row() {
        auto r = store->get_instance(id);
        REQUIRE(r);
        return *r;
    }
    std::int64_t count(const char* sql) { return env.count(sql); }
};

}  // namespace

TEST_CASE_TEMPLATE("lease protocol: a claim that loses the CAS is a cheap 'not claimed', not an error", S, DURABLE_TEST_STORES) {
    Fixture<S> f;
    auto r = f.claim("a", 7, kT);  // a version the row does not have
    CHECK(r.ok);
    CHECK_FALSE(r.error);
    CHECK(r.ids.empty());
    CHECK(r.count == 0);
    auto row = f.row();
    CHECK(row.version == 0);
    CHECK_FALSE(row.lease_owner);
}

TEST_CASE_TEMPLATE("lease protocol: two owners cannot both hold the lease", S, DURABLE_TEST_STORES) {
    Fixture<S> f;
    SUBCASE("one after the other") {
        auto a = f.claim("a", 0, kT);
        REQUIRE(a.ids == std::vector<std::string>{f.id});
        CHECK(f.row().version == 1);
        CHECK(f.claim("b", 0, kT + 1).ids.empty());                // the version moved on
        CHECK(f.claim("b", 1, kT + kLease - 1).ids.empty());       // the lease is still a's
        CHECK(f.claim("b", 1, kT + kLease).ids.empty());           // expires strictly after
        auto row = f.row();
        CHECK(row.lease_owner == "a");
        CHECK(row.version == 1);
    }
    SUBCASE("racing in one batch") {
        auto pa = std::make_shared<std::promise<WriteResult>>();
        auto pb = std::make_shared<std::promise<WriteResult>>();
        f.store->claim_instances({Candidate{f.id, 0, false}}, "a", kT, kT + kLease,
                                 [pa](const WriteResult& r) { pa->set_value(r); });
        f.store->claim_instances({Candidate{f.id, 0, false}}, "b", kT, kT + kLease,
                                 [pb](const WriteResult& r) { pb->set_value(r); });
        auto fa = pa->get_future();
        auto fb = pb->get_future();
        REQUIRE(fa.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
        REQUIRE(fb.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
        auto ra = fa.get();
        auto rb = fb.get();
        CHECK(ra.ids.size() + rb.ids.size() == 1);
        CHECK(f.row().lease_owner == (ra.ids.empty() ? "b" : "a"));
        CHECK(f.row().version == 1);
    }
}

TEST_CASE_TEMPLATE("lease protocol: renewal extends the expiry only, so the owner's next commit still succeeds", S, DURABLE_TEST_STORES) {
    Fixture<S> f;
    REQUIRE(f.claim("a", 0, kT).ids.size() == 1);
    auto c = f.episode("a", 1, kT + 100);  // built before the renewal, as a pipelined episode is
    auto r = f.renew("a", kT + 500);
    CHECK(r.ok);
    CHECK(r.ids == std::vector<std::string>{f.id});
    auto row = f.row();
    CHECK(row.version == 1);
    CHECK(row.lease_expires_at == kT + 500 + kLease);
    auto committed = f.commit(std::move(c));
    CHECK(committed.ok);
    CHECK_FALSE(committed.conflict);
    CHECK(committed.new_version == 2);
    CHECK(f.row().lease_expires_at == kT + 500 + kLease);  // a commit keeps the renewed expiry
}

TEST_CASE_TEMPLATE("lease protocol: renewal after a takeover fails and reports the instance gone", S, DURABLE_TEST_STORES) {
    Fixture<S> f;
    REQUIRE(f.claim("a", 0, kT).ids.size() == 1);
    SUBCASE("taken over") {
        REQUIRE(f.claim("b", 1, kT + kLease + 1).ids.size() == 1);
        auto r = f.renew("a", kT + kLease + 2);
        CHECK(r.ok);
        CHECK(r.ids.empty());
        auto row = f.row();
        CHECK(row.lease_owner == "b");
        CHECK(row.lease_expires_at == kT + 2 * kLease + 1);
        CHECK(row.version == 2);
    }
    SUBCASE("expired, not yet taken") {
        auto r = f.renew("a", kT + kLease + 1);
        CHECK(r.ids.empty());
        CHECK(f.row().lease_expires_at == kT + kLease);  // an expired lease is not revived
    }
}

TEST_CASE_TEMPLATE("lease protocol: a commit with a stale version, or by another owner, touches nothing", S, DURABLE_TEST_STORES) {
    Fixture<S> f;
    REQUIRE(f.claim("a", 0, kT).ids.size() == 1);
    auto stale = f.episode("a", 1, kT + 100);
    REQUIRE(f.claim("b", 1, kT + kLease + 1).ids.size() == 1);  // b takes over: version 2

    auto before = f.row();
    auto inbox_before = f.count("SELECT COUNT(*) FROM inbox");
    auto audit_before = f.count("SELECT COUNT(*) FROM audit_log");
    SUBCASE("the old owner, late") {
        auto r = f.commit(std::move(stale));
        CHECK(r.conflict);
        CHECK_FALSE(r.ok);
        CHECK_FALSE(r.error);
    }
    SUBCASE("a stranger with the current version") {
        auto r = f.commit(f.episode("c", 2, kT + kLease + 2));
        CHECK(r.conflict);
        CHECK_FALSE(r.ok);
    }
    SUBCASE("a pipelined pair: the second, expecting the first's version, is refused too") {
        auto second = f.episode("a", 2, kT + 200);
        CHECK(f.commit(std::move(stale)).conflict);
        CHECK(f.commit(std::move(second)).conflict);
    }
    auto after = f.row();
    CHECK(after.version == before.version);
    CHECK(after.lease_owner == "b");
    CHECK(after.status == before.status);
    CHECK(after.updated_at == before.updated_at);
    CHECK(f.store->get_history(f.id).empty());
    CHECK(f.count("SELECT COUNT(*) FROM inbox") == inbox_before);
    CHECK(f.count("SELECT COUNT(*) FROM activity_tasks") == 0);
    CHECK(f.count("SELECT COUNT(*) FROM audit_log") == audit_before);
}

TEST_CASE_TEMPLATE("lease protocol: release frees the lease, an orphaned release leaves it at once claimable by anyone", S, DURABLE_TEST_STORES) {
    Fixture<S> f;
    REQUIRE(f.claim("a", 0, kT).ids.size() == 1);
    SUBCASE("a stranger cannot release it") {
        auto r = f.release("b", false);
        CHECK(r.count == 0);
        CHECK(f.row().lease_owner == "a");
    }
    SUBCASE("freed: no owner, claimable through its inbox, not a recovery") {
        CHECK(f.release("a", false).count == 1);
        auto row = f.row();
        CHECK_FALSE(row.lease_owner);
        CHECK(row.lease_expires_at == 0);
        auto cands = f.store->find_claimable("b", {"orch"}, kT + 1, 10);
        REQUIRE(cands.size() == 1);
        CHECK_FALSE(cands[0].orphaned);
        REQUIRE(f.claim("b", cands[0].version, kT + 1).ids.size() == 1);
        CHECK(f.row().recoveries == 0);
    }
    SUBCASE("orphaned with work in flight and no inbox rows: still found, and the takeover counts") {
        REQUIRE(f.commit(f.episode("a", 1, kT + 10)).ok);  // consumes the start event
        // The timer the episode wrote is in the future: no visible inbox row is left.
        CHECK(f.store->find_claimable("b", {"orch"}, kT + 20, 10).empty());
        CHECK(f.release("a", true).count == 1);
        auto row = f.row();
        CHECK(row.lease_owner == "a");
        CHECK(row.lease_expires_at == 0);
        CHECK(f.renew("a", kT + 30).ids.empty());  // given up: renewal does not take it back
        auto cands = f.store->find_claimable("b", {"orch"}, kT + 30, 10);
        REQUIRE(cands.size() == 1);
        CHECK(cands[0].orphaned);
        REQUIRE(f.claim("b", cands[0].version, kT + 30).ids.size() == 1);
        CHECK(f.row().recoveries == 1);
    }
}

TEST_CASE_TEMPLATE("lease protocol: claiming an expired lease counts a recovery, progress resets the count", S, DURABLE_TEST_STORES) {
    Fixture<S> f;
    REQUIRE(f.claim("a", 0, kT).ids.size() == 1);
    CHECK(f.row().recoveries == 0);
    Millis now = kT + kLease + 1;
    REQUIRE(f.claim("b", 1, now).ids.size() == 1);
    CHECK(f.row().recoveries == 1);
    now += kLease + 1;
    REQUIRE(f.claim("c", 2, now).ids.size() == 1);
    CHECK(f.row().recoveries == 2);
    auto c = f.episode("c", 3, now + 1);
    c.progressed = true;
    REQUIRE(f.commit(std::move(c)).ok);
    CHECK(f.row().recoveries == 0);
    auto listed = f.store->list_leases(now + 2);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].lease_owner == "c");
}
