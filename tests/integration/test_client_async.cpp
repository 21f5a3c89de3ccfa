// The client's forms that wait without a thread: schedule_async, on_completion and
// wait_for_completion_async, on both stores; and what they promise about threads, errors,
// other processes' commits and a database closed under a pending wait.
#include <doctest/doctest.h>

#include <dirent.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>

#include "support/engine_fixture.hpp"

using namespace durable;
using namespace std::chrono_literals;
using durable::test::Engine;

namespace {

Task<std::string> chain(OrchestrationContext& ctx, std::string name) {
    auto a = co_await ctx.call_activity<std::string>("hello", name);
    co_return co_await ctx.call_activity<std::string>("hello", a);
}

Task<std::string> waits_for_go(OrchestrationContext& ctx) {
    auto v = co_await ctx.wait_for_external_event<std::string>("go");
    co_return "got " + v;
}

std::shared_ptr<Registry> registry() {
    auto r = std::make_shared<Registry>();
    r->add_activity("hello", [](std::string s) { return "hello " + s; });
    r->add_orchestrator("chain", chain);
    r->add_orchestrator("waits_for_go", waits_for_go);
    return r;
}

// What an asynchronous callback got, and how many times it was called.
template <class T>
struct Outcome {
    std::mutex mu;
    std::condition_variable cv;
    int calls = 0;
    std::optional<T> value;
    std::exception_ptr error;
    std::thread::id thread;

    AsyncHandler<T> handler() {
        return [this](std::optional<T> v, std::exception_ptr e) {
            std::lock_guard lock(mu);
            ++calls;
            value = std::move(v);
            error = e;
            thread = std::this_thread::get_id();
            cv.notify_all();
        };
    }
    bool wait(std::chrono::milliseconds limit = 20s) {
        std::unique_lock lock(mu);
        return cv.wait_for(lock, limit, [&] { return calls > 0; });
    }
    template <class E>
    bool failed_with() {
        std::lock_guard lock(mu);
        if (!error) return false;
        try {
            std::rethrow_exception(error);
        } catch (const E&) {
            return true;
        } catch (...) {
            return false;
        }
    }
};

std::size_t thread_count() {
    std::size_t n = 0;
    DIR* d = opendir("/proc/self/task");
    if (!d) return 0;
    while (auto* e = readdir(d)) {
        if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
    return n;
}

}  // namespace

TEST_CASE_TEMPLATE("on_completion hands the final state to its callback once, off the caller's thread", S,
                   DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    Outcome<ScheduleResult> scheduled;
    c.schedule_async("chain", "world", {}, scheduled.handler());
    REQUIRE(scheduled.wait());
    REQUIRE_FALSE(scheduled.error);
    REQUIRE(scheduled.value);
    CHECK(scheduled.value->created);
    auto id = scheduled.value->id;
    // Durable when the callback ran: the row is there.
    REQUIRE(c.get_status(id));

    Outcome<InstanceState> done;
    c.on_completion(id, done.handler(), 20s);
    REQUIRE(done.wait());
    REQUIRE_FALSE(done.error);
    REQUIRE(done.value);
    CHECK(done.value->status == Status::Completed);
    CHECK(done.value->output == "hello hello world");
    CHECK(done.thread != std::this_thread::get_id());
    // A finished instance: the callback runs at once, and the future form agrees.
    auto f = c.wait_for_completion_async(id, 5s);
    REQUIRE(f.wait_for(20s) == std::future_status::ready);
    CHECK(f.get().output == "hello hello world");
    std::this_thread::sleep_for(50ms);  // a second call would come within this
    std::lock_guard lock(done.mu);
    CHECK(done.calls == 1);
}

TEST_CASE_TEMPLATE("on_completion reports a missing instance and a timeout as the blocking wait throws them", S,
                   DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    Outcome<InstanceState> missing;
    c.on_completion("no-such-instance", missing.handler(), 5s);
    REQUIRE(missing.wait());
    CHECK(missing.failed_with<InstanceNotFound>());
    CHECK_FALSE(missing.value);

    auto id = c.schedule("waits_for_go");
    Outcome<InstanceState> late;
    c.on_completion(id, late.handler(), 200ms);
    REQUIRE(late.wait());
    CHECK(late.failed_with<Timeout>());
    // Raised after the timeout: the instance finishes, the ended wait stays ended.
    c.raise_event(id, "go", "now");
    CHECK(c.wait_for_completion(id, 20s).output == "got now");
    std::lock_guard lock(late.mu);
    CHECK(late.calls == 1);
}

TEST_CASE_TEMPLATE("raise_event_async delivers many events at once and reports errors as raise_event throws them", S,
                   DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    std::vector<std::string> ids;
    for (int i = 0; i < 20; ++i) ids.push_back(c.schedule("waits_for_go"));
    std::mutex mu;
    std::condition_variable cv;
    int answered = 0;                    // guarded by mu
    std::vector<std::exception_ptr> errs;  // guarded by mu
    for (std::size_t i = 0; i < ids.size(); ++i) {
        c.raise_event_async(ids[i], "go", std::to_string(i), [&](std::exception_ptr err) {
            std::lock_guard lock(mu);
            ++answered;
            if (err) errs.push_back(err);
            cv.notify_all();
        });
    }
    {
        std::unique_lock lock(mu);
        REQUIRE(cv.wait_for(lock, 20s, [&] { return answered == static_cast<int>(ids.size()); }));
        CHECK(errs.empty());
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
        CHECK(c.wait_for_completion(ids[i], 20s).output == "got " + std::to_string(i));
    }

    // No such instance, a finished one: the errors the blocking form throws, to the callback.
    std::exception_ptr missing, finished;
    std::promise<void> a, b;
    c.raise_event_async("no-such-instance", "go", "x", [&](std::exception_ptr err) {
        missing = err;
        a.set_value();
    });
    c.raise_event_async(ids[0], "go", "again", [&](std::exception_ptr err) {
        finished = err;
        b.set_value();
    });
    REQUIRE(a.get_future().wait_for(20s) == std::future_status::ready);
    REQUIRE(b.get_future().wait_for(20s) == std::future_status::ready);
    REQUIRE(missing);
    CHECK_THROWS_AS(std::rethrow_exception(missing), InstanceNotFound);
    REQUIRE(finished);
    CHECK_THROWS_AS(std::rethrow_exception(finished), InvalidInput);
    // Invalid arguments throw at the call, as raise_event's do.
    CHECK_THROWS_AS(c.raise_event_async(ids[1], "", "x", [](std::exception_ptr) {}), InvalidInput);
}

TEST_CASE_TEMPLATE("schedule_async answers an existing id as its if_exists says", S, DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    ScheduleOptions o;
    o.instance_id = "fixed-id";
    c.schedule("waits_for_go", Json(), o);

    Outcome<ScheduleResult> again;
    c.schedule_async("waits_for_go", Json(), o, again.handler());
    REQUIRE(again.wait());
    REQUIRE(again.value);
    CHECK_FALSE(again.value->created);
    CHECK(again.value->id == "fixed-id");

    o.if_exists = IfExists::Fail;
    Outcome<ScheduleResult> refused;
    c.schedule_async("waits_for_go", Json(), o, refused.handler());
    REQUIRE(refused.wait());
    CHECK(refused.failed_with<InstanceExists>());
    CHECK_THROWS_AS(c.schedule("waits_for_go", Json(), o), InstanceExists);
    // Invalid arguments throw at the call, as schedule() does.
    CHECK_THROWS_AS(c.schedule_async("", Json(), {}, [](auto, auto) {}), InvalidInput);
}

TEST_CASE("a thousand pending on_completion waits cost no thread each") {
    Engine e(registry());
    auto c = e.client();
    std::vector<std::string> ids;
    for (int i = 0; i < 50; ++i) ids.push_back(c.schedule("waits_for_go"));
    // Starts the process's one waiting thread before counting.
    Outcome<InstanceState> first;
    c.on_completion(ids[0], first.handler(), 60s);
    auto before = thread_count();
    std::atomic<int> completed{0};
    std::mutex mu;
    std::condition_variable cv;
    const int waits = 1000;
    for (int i = 0; i < waits; ++i) {
        c.on_completion(
            ids[static_cast<std::size_t>(i) % ids.size()],
            [&](std::optional<InstanceState> s, std::exception_ptr err) {
                if (!err && s && s->status == Status::Completed) ++completed;
                std::lock_guard lock(mu);
                cv.notify_all();
            },
            60s);
    }
    CHECK(thread_count() <= before);
    for (auto& id : ids) c.raise_event(id, "go", "x");
    std::unique_lock lock(mu);
    CHECK(cv.wait_for(lock, 30s, [&] { return completed.load() == waits; }));
}

TEST_CASE("on_completion sees an instance finished through another database handle, by looking") {
    Engine e(registry());
    // A second handle on the file: its own process-wide hub, which the host's commits never
    // notify (as a client in another process).
    auto other = Database::open(e.path);
    Client standalone(other);
    auto id = e.client().schedule("waits_for_go");
    Outcome<InstanceState> done;
    standalone.on_completion(id, done.handler(), 30s);
    e.client().raise_event(id, "go", "there");
    REQUIRE(done.wait(30s));
    REQUIRE(done.value);
    CHECK(done.value->output == "got there");
}

TEST_CASE("a wait pending when its database handle closes ends with a StoreError") {
    durable::test::TempDir dir;
    auto path = dir.file("closing.db");
    Outcome<InstanceState> done;
    {
        auto db = Database::open(path);
        Client c(db);
        auto id = c.schedule("waits_for_go");  // no host: it stays Pending
        c.on_completion(id, done.handler(), 60s);
    }
    REQUIRE(done.wait(10s));
    CHECK(done.failed_with<StoreError>());
}
