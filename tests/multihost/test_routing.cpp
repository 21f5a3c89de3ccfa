// Hosts that run different code, as separate processes: an orchestration host with activity
// workers (one killed mid-activity), and a rolling deploy where an old host lacks `v2`.
#include "multihost/cluster.hpp"

using namespace durable;
using namespace std::chrono_literals;
using durable::test::Cluster;
using durable::test::HostConfig;

TEST_CASE("an orchestration host and two activity workers finish 500 instances, a worker killed mid-activity has "
          "its tasks taken over, each completing once") {
    Cluster c;
    HostConfig orch;
    orch.activities = "none";
    orch.poll_ms = 20;
    c.start_host("orch", orch);
    HostConfig worker;
    worker.orchestrations = "none";
    worker.activity_ms = 20;
    worker.lease_ms = 1000;
    worker.poll_ms = 20;
    c.start_host("w1", worker);
    c.start_host("w2", worker);

    auto ids = c.schedule_many("seq5", Json(), 500);
    REQUIRE(test::wait_until([&] { return c.count_status("Completed") >= 50; }, 120s));
    // w1 is in the middle of activities now (it has 4 threads and 20 ms steps, and claims
    // as many tasks as it has free threads).
    REQUIRE(test::wait_until(
        [&] {
            std::map<std::pair<std::string, std::int64_t>, int> open;
            for (const auto& r : c.activity_log()) {
                if (r.host == "w1") open[{r.instance, r.task}] += r.phase == "start" ? 1 : -1;
            }
            for (const auto& [k, n] : open) {
                if (n > 0) return true;
            }
            return false;
        },
        30s, 1ms));
    c.host("w1").signal(SIGKILL);
    c.host("w1").wait(10s);

    REQUIRE(test::wait_until([&] { return c.count_status("Completed") == 500; }, 180s, 20ms));
    auto problems = c.history_problems(ids, 5);
    CHECK_MESSAGE(problems.empty(), Json(problems).dump(1));

    // Every activity w1 started and did not finish ran again on w2 and finished there.
    std::map<std::pair<std::string, std::int64_t>, std::set<std::string>> ended_on;
    std::map<std::pair<std::string, std::int64_t>, int> open_on_w1;
    for (const auto& r : c.activity_log()) {
        if (r.phase == "end") ended_on[{r.instance, r.task}].insert(r.host);
        if (r.host == "w1") open_on_w1[{r.instance, r.task}] += r.phase == "start" ? 1 : -1;
    }
    int taken_over = 0;
    for (const auto& [key, n] : open_on_w1) {
        if (n <= 0) continue;
        ++taken_over;
        CHECK_MESSAGE(ended_on[key].count("w2"), key.first << " task " << key.second << " was not taken over by w2");
    }
    CHECK(taken_over > 0);
    // The orchestration host ran no activity; the workers ran no episode.
    auto so = c.stop_host("orch");
    auto s2 = c.stop_host("w2");
    REQUIRE(so.stats.is_object());
    REQUIRE(s2.stats.is_object());
    CHECK(so.stats["activities"] == 0);
    CHECK(so.stats["completed"] == 500);
    CHECK(s2.stats["episodes"] == 0);
    CHECK(s2.stats["activities"].get<int>() > 0);
}

TEST_CASE("rolling deploy: instances of v2 wait Pending while only an old host runs, never failed, and run as soon "
          "as a host that has v2 starts") {
    Cluster c;
    HostConfig old_host;
    old_host.orchestrations = "seq5,long_activity";
    old_host.poll_ms = 20;
    c.start_host("old", old_host);

    auto v2_ids = c.schedule_many("v2", Json(), 20);
    auto v1_ids = c.schedule_many("seq5", Json(), 20);
    // The old host finishes what it can run, and has looked for work many times since.
    REQUIRE(test::wait_until([&] { return c.count_status("Completed") == 20; }, 60s));
    for (const auto& id : v2_ids) {
        auto s = c.client.get_status(id);
        REQUIRE(s);
        CHECK(s->status == Status::Pending);
        CHECK_FALSE(s->lease_owner.has_value());
    }
    CHECK(c.count_status("Failed") == 0);
    // The hosts table says who runs what.
    bool old_listed = false;
    for (const auto& h : c.client.hosts()) {
        if (h.id != "old") continue;
        old_listed = true;
        CHECK(h.orchestrations == std::vector<std::string>{"long_activity", "seq5"});
        CHECK(std::find(h.activities.begin(), h.activities.end(), "step") != h.activities.end());
    }
    CHECK(old_listed);

    HostConfig new_host;
    new_host.poll_ms = 20;
    c.start_host("new", new_host);
    REQUIRE(test::wait_until([&] { return c.count_status("Completed") == 40; }, 60s));
    CHECK(c.history_problems(v2_ids, 2).empty());
    CHECK(c.history_problems(v1_ids, 5).empty());
    for (const auto& id : v2_ids) CHECK(c.client.get_status(id)->output == 2);
}
