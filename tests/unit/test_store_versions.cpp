// The store's side of orchestration versions and rewinds, on both stores: the version an
// instance records (at creation, or by its first commit), claims filtered by name and
// version, the versions a host row lists, and the all-or-none rewind write.
#include <doctest/doctest.h>

#include <algorithm>
#include <future>
#include <map>
#include <set>

#include "store/store.hpp"
#include "support/store_kinds.hpp"

using namespace durable::store;

namespace {

constexpr Millis kNow = 1'700'000'000'000;

using durable::test::await_write;

NewInstance versioned(const std::string& id, std::optional<std::string> version, const std::string& name = "order") {
    NewInstance n;
    n.id = id;
    n.name = name;
    n.execution_id = "e-" + id;
    n.input = "1";
    n.now = kNow;
    n.start_event = R"({"t":"ExecutionStarted"})";
    n.start_at = kNow;
    n.orchestration_version = std::move(version);
    return n;
}

void create(Store& s, NewInstance n) {
    auto r = await_write([&](WriteCallback cb) { s.create_instance(std::move(n), std::move(cb)); });
    REQUIRE(r.ok);
}

std::set<std::string> claimable(Store& s, const std::vector<OrchestrationCode>& code, Millis now = kNow) {
    std::set<std::string> out;
    for (const auto& c : s.find_claimable("h", code, now, 100)) out.insert(c.id);
    return out;
}

// Claims `id` for `owner` and commits one episode that ends it Failed.
void fail_instance(Store& s, const std::string& id, const std::string& owner) {
    auto row = s.get_instance(id);
    REQUIRE(row);
    auto c = await_write([&](WriteCallback cb) {
        s.claim_instances({Candidate{id, row->version, false}}, owner, kNow, kNow + 10'000, std::move(cb));
    });
    REQUIRE(c.ids.size() == 1);
    EpisodeCommit e;
    e.instance_id = id;
    e.owner = owner;
    e.expected_version = row->version + 1;
    e.now = kNow;
    e.first_seq = 0;
    e.events = {R"({"t":"ExecutionStarted"})", R"({"t":"ExecutionCompleted","status":"Failed"})"};
    e.status = durable::Status::Failed;
    e.execution_id = row->execution_id;
    e.error = R"({"type":"Boom","message":"step 3"})";
    e.release_lease = true;
    auto r = await_write([&](WriteCallback cb) { s.commit_episode(std::move(e), std::move(cb)); });
    REQUIRE(r.ok);
}

}  // namespace

TEST_CASE_TEMPLATE("an instance records its orchestration version and hosts claim only the versions they register",
                   S, DURABLE_TEST_STORES) {
    S env;
    auto s = env.open();
    create(*s, versioned("v1-a", "1"));
    create(*s, versioned("v2-a", "2"));
    create(*s, versioned("plain", ""));
    create(*s, versioned("undecided", std::nullopt));
    create(*s, versioned("other", "1", "billing"));
    CHECK(s->get_instance("v1-a")->orchestration_version == "1");
    CHECK(s->get_instance("plain")->orchestration_version == "");
    CHECK_FALSE(s->get_instance("undecided")->orchestration_version.has_value());

    // A v1-only host: v1 instances and the undecided one, not v2, not unversioned, not billing.
    CHECK(claimable(*s, {{"order", "1"}}) == std::set<std::string>{"v1-a", "undecided"});
    CHECK(claimable(*s, {{"order", "2"}}) == std::set<std::string>{"v2-a", "undecided"});
    CHECK(claimable(*s, {{"order", "1"}, {"order", "2"}}) == std::set<std::string>{"v1-a", "v2-a", "undecided"});
    // Unversioned registrations ({"order"}: version "") run unversioned instances only.
    CHECK(claimable(*s, {{"order"}}) == std::set<std::string>{"plain", "undecided"});
    CHECK(claimable(*s, {{"billing", "1"}}) == std::set<std::string>{"other"});

    // The undecided instance's first commit records the version; later commits do not change it.
    auto row = s->get_instance("undecided");
    auto c = await_write([&](WriteCallback cb) {
        s->claim_instances({Candidate{"undecided", row->version, false}}, "h2", kNow, kNow + 10'000, std::move(cb));
    });
    REQUIRE(c.ids.size() == 1);
    for (const char* v : {"2", "1"}) {
        EpisodeCommit e;
        e.instance_id = "undecided";
        e.owner = "h2";
        e.expected_version = s->get_instance("undecided")->version;
        e.now = kNow;
        e.first_seq = std::string(v) == "2" ? 0 : 1;
        e.events = {R"({"t":"ExecutionStarted"})"};
        e.execution_id = row->execution_id;
        e.lease_expires_at = kNow + 10'000;
        e.orchestration_version = v;
        REQUIRE(await_write([&](WriteCallback cb) { s->commit_episode(std::move(e), std::move(cb)); }).ok);
    }
    CHECK(s->get_instance("undecided")->orchestration_version == "2");
    CHECK(claimable(*s, {{"order", "1"}}) == std::set<std::string>{"v1-a"});
}

TEST_CASE_TEMPLATE("a host row lists the versions the host registers per orchestration", S, DURABLE_TEST_STORES) {
    S env;
    auto s = env.open();
    HostRow h;
    h.id = "host-v";
    h.hostname = "box";
    h.pid = 7;
    h.started_at = h.heartbeat_at = kNow;
    h.orchestrations = {"order"};
    h.orchestration_versions = {{"order", {"1", "2"}}};
    REQUIRE(await_write([&](WriteCallback cb) { s->heartbeat(h, std::move(cb)); }).ok);
    auto hosts = s->list_hosts();
    REQUIRE(hosts.size() == 1);
    CHECK(hosts[0].orchestration_versions == std::map<std::string, std::vector<std::string>>{{"order", {"1", "2"}}});
}

TEST_CASE_TEMPLATE("rewind_instances puts Failed instances back to Running all or none", S, DURABLE_TEST_STORES) {
    S env;
    auto s = env.open();
    create(*s, versioned("parent", "1"));
    create(*s, versioned("child", "1"));
    create(*s, versioned("running", "1"));
    fail_instance(*s, "parent", "h1");
    fail_instance(*s, "child", "h1");
    REQUIRE(s->get_instance("parent")->status == durable::Status::Failed);

    auto rewind_of = [](const std::string& id, std::int64_t next_seq) {
        Rewind rw;
        rw.instance_id = id;
        rw.next_seq = next_seq;
        rw.now = kNow + 5;
        rw.messages.push_back(NewMessage{id, kNow + 5, true, R"({"t":"ExecutionRewound","reason":"fixed"})"});
        rw.audit = AuditEntry{kNow + 5, "test", "rewind", id, std::string("fixed")};
        return rw;
    };
    // One of them is not Failed: nothing at all is written.
    auto r = await_write([&](WriteCallback cb) {
        s->rewind_instances({rewind_of("parent", 2), rewind_of("running", 1)}, std::move(cb));
    });
    CHECK(r.conflict);
    CHECK_FALSE(r.ok);
    CHECK(s->get_instance("parent")->status == durable::Status::Failed);
    CHECK(s->get_inbox("parent", kNow + 10).empty());
    // History moved on since the caller read it (its next seq is stale): refused.
    r = await_write([&](WriteCallback cb) { s->rewind_instances({rewind_of("parent", 0)}, std::move(cb)); });
    CHECK(r.conflict);

    auto before = s->get_instance("parent")->version;
    r = await_write([&](WriteCallback cb) {
        s->rewind_instances({rewind_of("parent", 2), rewind_of("child", 2)}, std::move(cb));
    });
    REQUIRE(r.ok);
    CHECK(r.count == 2);
    for (const char* id : {"parent", "child"}) {
        auto row = s->get_instance(id);
        CHECK(row->status == durable::Status::Running);
        CHECK_FALSE(row->error.has_value());
        CHECK_FALSE(row->completed_at.has_value());
        CHECK_FALSE(row->lease_owner.has_value());
        CHECK(row->orchestration_version == "1");
        auto inbox = s->get_inbox(id, kNow + 10);
        REQUIRE(inbox.size() == 1);
        CHECK(inbox[0].control);
    }
    CHECK(s->get_instance("parent")->version == before + 1);  // a holder of the old version is fenced
    // Claimable again by a host that runs its version, by no other.
    CHECK(claimable(*s, {{"order", "1"}}, kNow + 10).count("parent") == 1);
    CHECK(claimable(*s, {{"order", "2"}}, kNow + 10).count("parent") == 0);
    auto audit = s->audit_log(std::string("parent"), 10);
    CHECK(std::any_of(audit.begin(), audit.end(), [](const AuditEntry& a) { return a.action == "rewind"; }));
    // A second rewind of the same (now Running) instance is refused.
    r = await_write([&](WriteCallback cb) { s->rewind_instances({rewind_of("parent", 2)}, std::move(cb)); });
    CHECK(r.conflict);
}
