// Orchestration versions across real processes: a rolling deploy where a host with only v1
// of `order` and a host with only v2 share one file.
#include "multihost/cluster.hpp"

using namespace durable;
using namespace std::chrono_literals;
using durable::test::Cluster;
using durable::test::HostConfig;

namespace {

std::vector<std::string> schedule_orders(Client& client, int n, std::optional<std::string> version = std::nullopt) {
    std::vector<std::string> ids;
    ScheduleOptions o;
    o.version = std::move(version);
    for (int i = 0; i < n; ++i) ids.push_back(client.schedule("order", Json(), o));
    return ids;
}

// Every instance of `ids` has status `status`.
bool all_are(Client& client, const std::vector<std::string>& ids, Status status) {
    for (const auto& id : ids) {
        auto s = client.get_status(id);
        if (!s || s->status != status) return false;
    }
    return true;
}

// The hosts whose activity-log lines are about `ids`.
std::set<std::string> hosts_that_ran(const std::vector<test::ActivityRun>& log, const std::vector<std::string>& ids) {
    std::set<std::string> wanted(ids.begin(), ids.end()), out;
    for (const auto& r : log) {
        if (wanted.count(r.instance)) out.insert(r.host);
    }
    return out;
}

}  // namespace

TEST_CASE("rolling deploy with versions: v1 instances in flight finish on the v1 host, new ones run v2, and v1 "
          "instances wait, not failed, while no v1 host runs") {
    Cluster c;
    HostConfig v1;
    v1.order_versions = "1";
    v1.poll_ms = 20;
    v1.lease_ms = 1000;
    c.start_host("v1-host", v1);

    // Before the deploy: instances record v1, run their first step, and wait for "go".
    auto before = schedule_orders(c.client, 10);
    REQUIRE(test::wait_until([&] { return all_are(c.client, before, Status::Running); }, 60s));
    for (const auto& id : before) CHECK(c.client.get_status(id)->version == "1");

    HostConfig v2 = v1;
    v2.order_versions = "2";
    c.start_host("v2-host", v2);
    REQUIRE(test::wait_until(
        [&] {
            for (const auto& h : c.client.hosts()) {
                if (h.id == "v2-host" && h.versions.count("order") && h.versions.at("order") == std::vector<std::string>{"2"}) {
                    return true;
                }
            }
            return false;
        },
        30s));
    // New instances record the newest version a live host registers: 2.
    Client fresh(c.db);
    auto after = schedule_orders(fresh, 10);
    for (const auto& id : after) CHECK(fresh.get_status(id)->version == "2");

    for (const auto& id : before) c.client.raise_event(id, "go");
    for (const auto& id : after) c.client.raise_event(id, "go");
    REQUIRE(test::wait_until([&] { return all_are(c.client, before, Status::Completed) && all_are(c.client, after, Status::Completed); }, 90s));
    for (const auto& id : before) CHECK(c.client.get_status(id)->output == "v1/1");
    for (const auto& id : after) CHECK(c.client.get_status(id)->output == "v2/2");
    auto log = c.activity_log();
    CHECK(hosts_that_ran(log, before) == std::set<std::string>{"v1-host"});
    CHECK(hosts_that_ran(log, after) == std::set<std::string>{"v2-host"});
    CHECK(c.history_problems(before, 2).empty());
    CHECK(c.history_problems(after, 3).empty());

    // v1 instances in flight when the v1 host dies: nobody else may run them.
    auto stranded = schedule_orders(c.client, 5, "1");
    REQUIRE(test::wait_until([&] { return all_are(c.client, stranded, Status::Running); }, 60s));
    c.host("v1-host").signal(SIGKILL);
    c.host("v1-host").wait(10s);
    for (const auto& id : stranded) c.client.raise_event(id, "go");
    REQUIRE(test::wait_until(
        [&] {
            for (const auto& id : stranded) {
                auto s = c.client.get_status(id);
                if (s->lease_owner && s->lease_expires_at_ms >= test::wall_ms()) return false;
            }
            return true;
        },
        30s));
    // The v2 host keeps working meanwhile, and so looks at the stranded ones' due inboxes
    // and expired leases many times.
    auto meanwhile = schedule_orders(fresh, 5, "2");
    for (const auto& id : meanwhile) c.client.raise_event(id, "go");
    REQUIRE(test::wait_until([&] { return all_are(c.client, meanwhile, Status::Completed); }, 60s));
    for (const auto& id : stranded) {
        auto s = c.client.get_status(id);
        CHECK(s->status != Status::Failed);
        CHECK_FALSE(is_terminal(s->status));
        CHECK(s->version == "1");
    }
    CHECK(c.count_status("Failed") == 0);

    // A v1 host returns: they finish there, on v1 code.
    c.start_host("v1-again", v1);
    REQUIRE(test::wait_until([&] { return all_are(c.client, stranded, Status::Completed); }, 60s));
    for (const auto& id : stranded) CHECK(c.client.get_status(id)->output == "v1/1");
    log = c.activity_log();
    auto ran = hosts_that_ran(log, stranded);
    CHECK(ran.count("v2-host") == 0);
    CHECK(ran.count("v1-again") == 1);
}
