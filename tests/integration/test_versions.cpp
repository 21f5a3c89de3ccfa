// Changing code while instances run, through a real host on both stores: versions side by
// side in one registry, patches across a restart with new code, rewind of a failed instance
// (and of its failed sub-orchestration), restart.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <thread>
#include <durable/durable.hpp>

#include "support/engine_fixture.hpp"
#include "support/process.hpp"

using namespace durable;
using namespace std::chrono_literals;
using durable::test::EngineOn;

namespace {

Task<std::string> order_v1(OrchestrationContext& ctx, int n) {
    int x = co_await ctx.call_activity<int>("add", n);
    co_return "v1:" + std::to_string(x) + ":" + ctx.version();
}

Task<std::string> order_v2(OrchestrationContext& ctx, int n) {
    int x = co_await ctx.call_activity<int>("add", n);
    x = co_await ctx.call_activity<int>("add", x);
    co_return "v2:" + std::to_string(x) + ":" + ctx.version();
}

std::shared_ptr<Registry> versioned_registry() {
    auto r = std::make_shared<Registry>();
    r->add_orchestrator("order", order_v1, {.version = "1"});
    r->add_orchestrator("order", order_v2, {.version = "2"});
    r->add_activity("add", [](int n) { return n + 1; });
    return r;
}

// How often each step ran, and whether the third one fails (shared with the activities).
struct Steps {
    std::atomic<int> runs[3] = {0, 0, 0};
    std::atomic<bool> third_fails{true};
};

// Three bookings in a row; the third fails while `third_fails` (no retries: the failure
// fails the instance).
Task<std::string> trip(OrchestrationContext& ctx, std::string who) {
    auto a = co_await ctx.call_activity<std::string>("book_flight", who);
    auto b = co_await ctx.call_activity<std::string>("book_hotel", a);
    auto c = co_await ctx.call_activity<std::string>("book_car", b);
    co_return c;
}

// A parent with a step of its own, then the trip as a sub-orchestration.
Task<std::string> holiday(OrchestrationContext& ctx, std::string who) {
    auto paid = co_await ctx.call_activity<std::string>("pay", who);
    co_return co_await ctx.call_sub_orchestration<std::string>("trip", paid);
}

std::shared_ptr<Registry> trip_registry(const std::shared_ptr<Steps>& steps) {
    auto r = std::make_shared<Registry>();
    r->add_orchestrator("trip", trip);
    r->add_orchestrator("holiday", holiday);
    ResiliencePolicy once;
    RetryOptions no_retry;
    no_retry.max_attempts = 1;
    once.retry = no_retry;
    ActivitySettings settings;
    settings.policy = once;
    r->add_activity("book_flight", [steps](std::string s) { ++steps->runs[0]; return s + "+flight"; }, settings);
    r->add_activity("book_hotel", [steps](std::string s) { ++steps->runs[1]; return s + "+hotel"; }, settings);
    r->add_activity("book_car", [steps](std::string s) {
        ++steps->runs[2];
        if (steps->third_fails) throw std::runtime_error("no cars left");
        return s + "+car";
    }, settings);
    r->add_activity("pay", [](std::string s) { return s + "+paid"; }, settings);
    return r;
}

// Polls `ok` until it holds or `limit` passes (another component's commits have no event to wait on here).
bool wait_until(const std::function<bool()>& ok, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!ok()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

int count_events(Client& client, const std::string& id, EventType type) {
    int n = 0;
    for (const auto& e : client.history(id)) n += e.type() == type ? 1 : 0;
    return n;
}

}  // namespace

TEST_CASE_TEMPLATE("versions side by side: a new instance runs the newest version, a chosen version runs its own code",
                   S, DURABLE_TEST_STORES) {
    EngineOn<S> e(versioned_registry());
    auto client = e.client();
    auto newest = client.schedule("order", 1);
    ScheduleOptions v1;
    v1.version = "1";
    auto old = client.schedule("order", 1, v1);
    auto s2 = client.wait_for_completion(newest, 60s);
    auto s1 = client.wait_for_completion(old, 60s);
    CHECK(s2.version == "2");
    CHECK(s2.output == "v2:3:2");
    CHECK(s1.version == "1");
    CHECK(s1.output == "v1:2:1");
    ScheduleOptions v9;
    v9.version = "9";
    CHECK_THROWS_AS(client.schedule("order", 1, v9), UnknownOrchestration);
    // The hosts row says which versions the host runs.
    bool listed = false;
    for (const auto& h : client.hosts()) {
        if (h.versions.count("order")) {
            listed = true;
            CHECK(h.versions.at("order") == std::vector<std::string>{"1", "2"});
        }
    }
    CHECK(listed);
}

TEST_CASE("versions order numerically segment by segment") {
    CHECK(compare_versions("2", "10") < 0);
    CHECK(compare_versions("10", "10.1") < 0);
    CHECK(compare_versions("1.2", "1.10") < 0);
    CHECK(compare_versions("", "1") < 0);
    CHECK(compare_versions("02", "2") == 0);
    CHECK(compare_versions("beta", "alpha") > 0);
    Registry r;
    r.add_orchestrator("x", order_v1, {.version = "10"});
    r.add_orchestrator("x", order_v2, {.version = "9"});
    CHECK(r.newest_version("x") == "10");
    CHECK(r.orchestrator_versions("x") == std::vector<std::string>{"9", "10"});
    CHECK(r.orchestrator("x", "9") != nullptr);
    CHECK(r.orchestrator("x", "8") == nullptr);
}

namespace {

// Before the fix: "truncate" then a wait for "go". After: "round" behind a patch.
Task<std::string> invoice_old(OrchestrationContext& ctx, int n) {
    auto tax = co_await ctx.call_activity<std::string>("truncate", n);
    co_await ctx.wait_for_external_event<Json>("go");
    co_return tax;
}

Task<std::string> invoice_new(OrchestrationContext& ctx, int n) {
    std::string tax;
    if (ctx.patched("fix-tax-rounding")) {
        tax = co_await ctx.call_activity<std::string>("round", n);
    } else {
        tax = co_await ctx.call_activity<std::string>("truncate", n);
    }
    co_await ctx.wait_for_external_event<Json>("go");
    co_return tax;
}

std::shared_ptr<Registry> invoice_registry(bool patched) {
    auto r = std::make_shared<Registry>();
    if (patched) {
        r->add_orchestrator("invoice", invoice_new);
    } else {
        r->add_orchestrator("invoice", invoice_old);
    }
    r->add_activity("truncate", [](int n) { return "truncated " + std::to_string(n); });
    r->add_activity("round", [](int n) { return "rounded " + std::to_string(n); });
    return r;
}

}  // namespace

TEST_CASE_TEMPLATE("patched() live across a restart: an instance in flight keeps the old path, a new one takes the "
                   "patched path and records the marker",
                   S, DURABLE_TEST_STORES) {
    EngineOn<S> e(invoice_registry(false));
    auto client = e.client();
    auto old = client.schedule("invoice", 7);
    // It has run "truncate" and waits for "go".
    REQUIRE(wait_until([&] { return count_events(client, old, EventType::TaskCompleted) == 1; }, 60s));

    e.registry = invoice_registry(true);  // the deploy: the same host, restarted with patched code
    e.restart();
    client = e.client();
    auto fresh = client.schedule("invoice", 7);
    client.raise_event(old, "go");
    client.raise_event(fresh, "go");
    auto so = client.wait_for_completion(old, 60s);
    auto sf = client.wait_for_completion(fresh, 60s);
    REQUIRE(so.status == Status::Completed);
    REQUIRE(sf.status == Status::Completed);
    CHECK(so.output == "truncated 7");
    CHECK(sf.output == "rounded 7");
    CHECK(count_events(client, old, EventType::PatchApplied) == 0);
    CHECK(count_events(client, fresh, EventType::PatchApplied) == 1);
    for (const auto& ev : client.history(fresh)) {
        if (ev.type() == EventType::PatchApplied) CHECK(ev.event["patch"] == "fix-tax-rounding");
    }
}

TEST_CASE_TEMPLATE("rewind a trip that failed at its third step: it completes without running steps one and two again",
                   S, DURABLE_TEST_STORES) {
    auto steps = std::make_shared<Steps>();
    EngineOn<S> e(trip_registry(steps));
    auto client = e.client();
    auto id = client.schedule("trip", std::string("ann"));
    auto failed = client.wait_for_completion(id, 60s);
    REQUIRE(failed.status == Status::Failed);
    CHECK(steps->runs[0] == 1);
    CHECK(steps->runs[1] == 1);
    CHECK(steps->runs[2] == 1);

    steps->third_fails = false;  // the cause is fixed
    client.rewind(id, "cars are back");
    auto done = client.wait_for_completion(id, 60s);
    REQUIRE(done.status == Status::Completed);
    CHECK(done.output == "ann+flight+hotel+car");
    CHECK(done.error.is_null());
    CHECK(steps->runs[0] == 1);  // not run again
    CHECK(steps->runs[1] == 1);
    CHECK(steps->runs[2] == 2);
    // History keeps the whole story: the failure, the rewind with its reason, the success.
    auto history = client.history(id);
    CHECK(count_events(client, id, EventType::TaskFailed) == 1);
    CHECK(count_events(client, id, EventType::ExecutionRewound) == 1);
    for (const auto& ev : history) {
        if (ev.type() == EventType::ExecutionRewound) CHECK(ev.event["reason"] == "cars are back");
    }
    CHECK(history.back().type() == EventType::ExecutionCompleted);
    auto audit = client.audit_log(id);
    CHECK(std::any_of(audit.begin(), audit.end(), [](const AuditRecord& a) { return a.action == "rewind"; }));

    // Rewinding an instance that has not failed is a clear error.
    try {
        client.rewind(id, "again");
        FAIL("rewinding a Completed instance did not throw");
    } catch (const InvalidInput& err) {
        CHECK(std::string(err.what()).find("is Completed: only a Failed instance can be rewound") != std::string::npos);
    }
    CHECK_THROWS_AS(client.rewind("no-such-instance"), InstanceNotFound);
}

TEST_CASE_TEMPLATE("rewind of a parent whose sub-orchestration failed rewinds the child too", S, DURABLE_TEST_STORES) {
    auto steps = std::make_shared<Steps>();
    EngineOn<S> e(trip_registry(steps));
    auto client = e.client();
    auto id = client.schedule("holiday", std::string("bo"));
    REQUIRE(client.wait_for_completion(id, 60s).status == Status::Failed);
    auto children = client.query(QueryFilter{{}, std::string("trip"), {}, {}}).instances;
    REQUIRE(children.size() == 1);
    CHECK(children[0].status == Status::Failed);

    steps->third_fails = false;
    client.rewind(id);
    auto done = client.wait_for_completion(id, 60s);
    REQUIRE(done.status == Status::Completed);
    CHECK(done.output == "bo+paid+flight+hotel+car");
    CHECK(client.get_status(children[0].id)->status == Status::Completed);
    CHECK(steps->runs[0] == 1);
    CHECK(steps->runs[1] == 1);
    CHECK(steps->runs[2] == 2);
}

TEST_CASE_TEMPLATE("restart starts the instance again with the same name, version and input", S, DURABLE_TEST_STORES) {
    EngineOn<S> e(versioned_registry());
    auto client = e.client();
    ScheduleOptions v1;
    v1.version = "1";
    v1.instance_id = "order-41";
    client.schedule("order", 41, v1);
    auto first = client.wait_for_completion("order-41", 60s);
    REQUIRE(first.status == Status::Completed);

    // Same id: the finished instance is replaced by a new execution.
    CHECK(client.restart("order-41") == "order-41");
    auto again = client.wait_for_completion("order-41", 60s);
    REQUIRE(again.status == Status::Completed);
    CHECK(again.execution_id != first.execution_id);
    CHECK(again.version == "1");  // not the newest: the version it ran
    CHECK(again.input == 41);
    CHECK(again.output == "v1:42:1");

    // A new id: a copy beside it.
    RestartOptions copy;
    copy.new_id = true;
    auto other = client.restart("order-41", copy);
    CHECK(other != "order-41");
    auto s = client.wait_for_completion(other, 60s);
    CHECK(s.name == "order");
    CHECK(s.version == "1");
    CHECK(s.input == 41);
    CHECK(s.output == "v1:42:1");

    CHECK_THROWS_AS(client.restart("missing"), InstanceNotFound);
}

namespace {

struct CliResult {
    int code = -1;
    std::string out, err;
};

// `durable --db <db> args...`, run to completion (bounded).
CliResult durable_cli(const durable::test::TempDir& dir, const std::string& db, std::vector<std::string> args) {
    static int counter = 0;
    args.insert(args.begin(), {"--db", db});
    std::string err_path = dir.file("cli-stderr-" + std::to_string(++counter) + ".txt");
    durable::test::Process p(std::string(DURABLE_BIN_DIR) + "/durable", args, {err_path});
    auto f = durable::test::read_to_end(p, 60s);
    REQUIRE(f.code);
    CliResult r{*f.code, {}, durable::test::read_text(err_path)};
    for (const auto& l : f.lines) r.out += l + "\n";
    return r;
}

}  // namespace

TEST_CASE("the command line rewinds and restarts instances and shows their versions") {
    auto steps = std::make_shared<Steps>();
    durable::test::Engine e(trip_registry(steps));
    auto client = e.client();
    client.schedule("trip", std::string("cy"), ScheduleOptions{.instance_id = std::string("trip-1")});
    REQUIRE(client.wait_for_completion("trip-1", 60s).status == Status::Failed);
    e.host->stop();
    e.host.reset();

    // Rewinding from the command line, while no host runs: it waits for one.
    auto r = durable_cli(e.dir, e.path, {"rewind", "trip-1", "--reason", "cars are back"});
    CHECK(r.code == 0);
    CHECK(r.out.find("rewound trip-1") != std::string::npos);
    auto status = durable_cli(e.dir, e.path, {"status", "trip-1"});
    CHECK(status.out.find("status:      Running") != std::string::npos);
    CHECK(status.out.find("waiting for a host that registers 'trip'") != std::string::npos);

    steps->third_fails = false;
    e.restart();
    client = e.client();
    REQUIRE(client.wait_for_completion("trip-1", 60s).status == Status::Completed);
    CHECK(steps->runs[0] == 1);
    CHECK(steps->runs[2] == 2);

    // Rewinding it again is refused: it has not failed.
    auto again = durable_cli(e.dir, e.path, {"rewind", "trip-1"});
    CHECK(again.code == 1);
    CHECK(again.err.find("only a Failed instance can be rewound") != std::string::npos);

    // Restart under a new id prints it; the copy runs the same input.
    auto copy = durable_cli(e.dir, e.path, {"restart", "trip-1", "--new-id"});
    REQUIRE(copy.code == 0);
    std::string new_id = copy.out.substr(0, copy.out.find('\n'));
    CHECK(new_id != "trip-1");
    auto s = client.wait_for_completion(new_id, 60s);
    CHECK(s.input == "cy");
    CHECK(s.output == "cy+flight+hotel+car");
    // Restart under its own id replaces the finished instance.
    auto same = durable_cli(e.dir, e.path, {"restart", "trip-1"});
    CHECK(same.code == 0);
    CHECK(same.out == "trip-1\n");
    CHECK(client.wait_for_completion("trip-1", 60s).status == Status::Completed);
    CHECK(steps->runs[0] == 3);
}

TEST_CASE("the command line starts a chosen version and lists and shows versions") {
    durable::test::Engine e(versioned_registry());
    auto r = durable_cli(e.dir, e.path, {"start", "order", "--version", "1", "--input", "5", "--id", "o-1", "--force"});
    REQUIRE(r.code == 0);
    auto client = e.client();
    auto s = client.wait_for_completion("o-1", 60s);
    CHECK(s.version == "1");
    CHECK(s.output == "v1:6:1");
    auto status = durable_cli(e.dir, e.path, {"status", "o-1"});
    CHECK(status.out.find("version:     1\n") != std::string::npos);
    auto json = Json::parse(durable_cli(e.dir, e.path, {"status", "o-1", "--json"}).out);
    CHECK(json["version"] == "1");
    auto list = durable_cli(e.dir, e.path, {"list"});
    CHECK(list.out.find("VERSION") != std::string::npos);
    // A version no live host runs waits for one, and says so.
    r = durable_cli(e.dir, e.path, {"start", "order", "--version", "3", "--input", "5", "--id", "o-3", "--force"});
    CHECK(r.code == 0);
    CHECK(r.err.find("no live host registers 'order' version '3'") != std::string::npos);
    status = durable_cli(e.dir, e.path, {"status", "o-3"});
    CHECK(status.out.find("waiting for a host that registers 'order' version '3'") != std::string::npos);
    auto hosts = durable_cli(e.dir, e.path, {"hosts"});
    CHECK(hosts.out.find("order (v1, v2)") != std::string::npos);
}
