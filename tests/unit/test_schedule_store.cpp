// The store's schedule contract, on both stores: create (a second create of the id writes
// nothing), the step under the CAS on the schedule's version (a stale step writes nothing, not
// even its instances; a tick's instance is created once even when a later step names it again),
// the reads the scheduler uses (due, next fire) honouring pause and buffered ticks, and delete.
#include <doctest/doctest.h>

#include <future>
#include <thread>
#include <vector>

#include "store/store.hpp"
#include "support/store_kinds.hpp"

using namespace durable::store;

namespace {

constexpr auto kWait = std::chrono::seconds(30);
constexpr Millis kNow = 1'700'000'040'000;

// As durable::test::await_write, and a write that failed throws its error.
WriteResult await_write(const std::function<void(WriteCallback)>& submit) {
    auto r = durable::test::await_write(submit);
    if (r.error) std::rethrow_exception(r.error);
    return r;
}

ScheduleRow schedule(const std::string& id, Millis next_fire) {
    ScheduleRow r;
    r.id = id;
    r.cron = "* * * * *";
    r.orchestration = "orch";
    r.input = R"({"n":1})";
    r.overlap = "skip";
    r.catchup_window_ms = 60'000;
    r.jitter_ms = 5;
    r.next_fire = next_fire;
    r.created_at = r.updated_at = kNow;
    return r;
}

NewInstance tick(const std::string& id) {
    NewInstance n;
    n.id = id;
    n.name = "orch";
    n.execution_id = "e-" + id;
    n.input = R"({"n":1})";
    n.now = kNow;
    n.start_at = kNow;
    n.start_event = R"({"t":"ExecutionStarted"})";
    n.actor = "scheduler@test";
    return n;
}

}  // namespace

TEST_CASE_TEMPLATE("schedules are created once and read back whole", S, DURABLE_TEST_STORES) {
    S env;
    auto st = env.open();
    auto row = schedule("nightly", kNow + 60'000);
    row.note = "a note";
    auto r = await_write([&](WriteCallback cb) {
        st->create_schedule(row, AuditEntry{kNow, "client@test", "schedule_create", std::nullopt, "nightly"}, std::move(cb));
    });
    CHECK(r.ok);
    CHECK_FALSE(r.conflict);
    auto again = await_write([&](WriteCallback cb) { st->create_schedule(schedule("nightly", 1), std::nullopt, std::move(cb)); });
    CHECK(again.conflict);
    auto got = st->get_schedule("nightly");
    REQUIRE(got);
    CHECK(got->cron == "* * * * *");
    CHECK(got->orchestration == "orch");
    CHECK(got->input == std::optional<std::string>(R"({"n":1})"));
    CHECK(got->overlap == "skip");
    CHECK(got->catchup_window_ms == 60'000);
    CHECK(got->jitter_ms == 5);
    CHECK_FALSE(got->paused);
    CHECK(got->note == std::optional<std::string>("a note"));
    CHECK(got->next_fire == std::optional<Millis>(kNow + 60'000));  // the second create changed nothing
    CHECK_FALSE(got->last_fire);
    CHECK_FALSE(got->buffered_tick);
    CHECK(got->version == 0);
    CHECK(got->created_at == kNow);
    CHECK(env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'schedule_create'") == 1);
    CHECK_FALSE(st->get_schedule("other"));
    await_write([&](WriteCallback cb) { st->create_schedule(schedule("a-first", kNow), std::nullopt, std::move(cb)); });
    auto all = st->list_schedules();
    REQUIRE(all.size() == 2);
    CHECK(all[0].id == "a-first");
    CHECK(all[1].id == "nightly");
}

TEST_CASE_TEMPLATE("a schedule step commits under the version CAS with its instances or not at all", S,
                   DURABLE_TEST_STORES) {
    S env;
    auto st = env.open();
    await_write([&](WriteCallback cb) { st->create_schedule(schedule("s", kNow), std::nullopt, std::move(cb)); });
    auto row = *st->get_schedule("s");

    // Two hosts computed the same step from version 0: the first wins, the second writes nothing.
    ScheduleUpdate u;
    u.row = row;
    u.row.next_fire = kNow + 60'000;
    u.row.last_fire = kNow;
    u.row.last_instance_id = "s@t0";
    u.row.fired = 1;
    u.row.updated_at = kNow + 1;
    u.instances = {tick("s@t0")};
    u.audit = {AuditEntry{kNow, "scheduler@a", "schedule_tick", std::string("s@t0"), "s"}};
    ScheduleUpdate loser = u;
    loser.instances = {tick("s@t0"), tick("s@loser-only")};
    auto first = await_write([&](WriteCallback cb) { st->update_schedule(u, std::move(cb)); });
    CHECK(first.ok);
    CHECK(first.new_version == 1);
    CHECK(first.ids == std::vector<std::string>{"s@t0"});
    auto second = await_write([&](WriteCallback cb) { st->update_schedule(loser, std::move(cb)); });
    CHECK(second.conflict);
    CHECK(second.ids.empty());
    CHECK_FALSE(st->get_instance("s@loser-only"));
    CHECK(env.count("SELECT COUNT(*) FROM instances") == 1);
    CHECK(env.count("SELECT COUNT(*) FROM inbox WHERE instance_id = 's@t0'") == 1);
    CHECK(env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'schedule_tick'") == 1);
    CHECK(env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'schedule' AND instance_id = 's@t0'") == 1);

    auto now = *st->get_schedule("s");
    CHECK(now.version == 1);
    CHECK(now.fired == 1);
    CHECK(now.last_instance_id == std::optional<std::string>("s@t0"));
    CHECK(now.next_fire == std::optional<Millis>(kNow + 60'000));
    CHECK(now.updated_at == kNow + 1);
    auto inst = st->get_instance("s@t0");
    REQUIRE(inst);
    CHECK(inst->name == "orch");
    CHECK(inst->input == std::optional<std::string>(R"({"n":1})"));

    // A later step naming the same tick's id again creates nothing: a tick starts one instance.
    ScheduleUpdate again;
    again.row = now;
    again.row.buffered_tick = kNow + 120'000;
    again.row.paused = true;
    again.row.note = "why";
    again.instances = {tick("s@t0")};
    auto r = await_write([&](WriteCallback cb) { st->update_schedule(again, std::move(cb)); });
    CHECK(r.ok);
    CHECK(r.ids.empty());
    CHECK(env.count("SELECT COUNT(*) FROM inbox WHERE instance_id = 's@t0'") == 1);
    auto last = *st->get_schedule("s");
    CHECK(last.version == 2);
    CHECK(last.paused);
    CHECK(last.note == std::optional<std::string>("why"));
    CHECK(last.buffered_tick == std::optional<Millis>(kNow + 120'000));

    // A step on a schedule that is gone is a conflict too.
    ScheduleUpdate ghost;
    ghost.row = schedule("ghost", kNow);
    ghost.instances = {tick("ghost@t0")};
    CHECK(await_write([&](WriteCallback cb) { st->update_schedule(ghost, std::move(cb)); }).conflict);
    CHECK_FALSE(st->get_instance("ghost@t0"));
}

TEST_CASE_TEMPLATE("many writers racing one schedule step: exactly one commits it", S, DURABLE_TEST_STORES) {
    S env;
    auto st = env.open();
    await_write([&](WriteCallback cb) { st->create_schedule(schedule("race", kNow), std::nullopt, std::move(cb)); });
    auto row = *st->get_schedule("race");
    // Three stores (as three host processes) and the same step computed on each.
    std::vector<std::shared_ptr<Store>> stores = {st, env.open(), env.open()};
    std::vector<std::future<WriteResult>> results;
    for (int i = 0; i < 3; ++i) {
        ScheduleUpdate u;
        u.row = row;
        u.row.fired = 1;
        u.row.next_fire = kNow + 60'000;
        u.instances = {tick("race@t0")};
        auto p = std::make_shared<std::promise<WriteResult>>();
        results.push_back(p->get_future());
        stores[static_cast<std::size_t>(i)]->update_schedule(u, [p](const WriteResult& r) { p->set_value(r); });
    }
    int won = 0, lost = 0;
    for (auto& f : results) {
        REQUIRE(f.wait_for(kWait) == std::future_status::ready);
        auto r = f.get();
        REQUIRE_FALSE(r.error);
        if (r.conflict) {
            ++lost;
        } else {
            ++won;
            CHECK(r.ids == std::vector<std::string>{"race@t0"});
        }
    }
    CHECK(won == 1);
    CHECK(lost == 2);
    CHECK(st->get_schedule("race")->version == 1);
    CHECK(env.count("SELECT COUNT(*) FROM inbox") == 1);
}

TEST_CASE_TEMPLATE("due schedules and the next fire time leave paused ones out and keep buffered ones", S,
                   DURABLE_TEST_STORES) {
    S env;
    auto st = env.open();
    CHECK_FALSE(st->next_schedule_fire());
    auto add = [&](ScheduleRow r) {
        await_write([&](WriteCallback cb) { st->create_schedule(std::move(r), std::nullopt, std::move(cb)); });
    };
    add(schedule("due", kNow - 1'000));
    add(schedule("later", kNow + 5'000));
    auto paused = schedule("paused", kNow - 5'000);
    paused.paused = true;
    add(paused);
    auto buffered = schedule("buffered", kNow + 60'000);
    buffered.buffered_tick = kNow - 60'000;
    add(buffered);
    auto none = schedule("exhausted", 0);
    none.next_fire.reset();
    add(none);

    auto due = st->due_schedules(kNow, 10);
    std::vector<std::string> ids;
    for (const auto& d : due) ids.push_back(d.id);
    CHECK(ids == std::vector<std::string>{"due", "buffered"});
    // Each kind has its own limit: buffered ticks never crowd out due ones.
    auto one = st->due_schedules(kNow, 1);
    REQUIRE(one.size() == 2);
    CHECK(one[0].id == "due");
    auto late = schedule("later-due", kNow - 500);
    add(late);
    auto two = st->due_schedules(kNow, 1);
    REQUIRE(two.size() == 2);
    CHECK(two[0].id == "due");  // the most overdue first
    CHECK(two[1].id == "buffered");
    await_write([&](WriteCallback cb) { st->delete_schedule("later-due", std::nullopt, std::move(cb)); });
    CHECK(st->next_schedule_fire() == std::optional<Millis>(kNow - 1'000));

    auto d = await_write([&](WriteCallback cb) {
        st->delete_schedule("due", AuditEntry{kNow, "client@test", "schedule_delete", std::nullopt, "due"}, std::move(cb));
    });
    CHECK(d.count == 1);
    CHECK(await_write([&](WriteCallback cb) { st->delete_schedule("due", std::nullopt, std::move(cb)); }).count == 0);
    CHECK(st->next_schedule_fire() == std::optional<Millis>(kNow + 5'000));
    CHECK(env.count("SELECT COUNT(*) FROM audit_log WHERE action = 'schedule_delete'") == 1);
    CHECK(st->list_schedules().size() == 4);
}
