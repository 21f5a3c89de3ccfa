// The cross-process wake-ups of the SQLite store (store/sqlite/wake.hpp): counters on a
// shared page next to the database, futex waits with a bound, and WorkSignals telling a
// subscriber about work other processes committed and not about its own. Two boards (or two
// stores) on one file stand for two processes: the kernel keys the futex by the file's page,
// whoever maps it.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "store/sqlite/wake.hpp"
#include "store/store.hpp"
#include "support/temp_dir.hpp"

using namespace durable::store;
using namespace durable::store::sqlite;
using durable::test::TempDir;

namespace {

constexpr auto kWait = std::chrono::seconds(30);

// Counts a subscriber's calls; waits (bounded) for the next.
struct Calls {
    std::mutex mu;
    std::condition_variable cv;
    int n = 0;  // guarded by mu
    void hit() {
        {
            std::lock_guard lock(mu);
            ++n;
        }
        cv.notify_all();
    }
    bool wait_for_more_than(int k) {
        std::unique_lock lock(mu);
        return cv.wait_for(lock, kWait, [&] { return n > k; });
    }
    int count() {
        std::lock_guard lock(mu);
        return n;
    }
};

}  // namespace

TEST_CASE("a wake board wakes a waiter of another mapping at once and times out when nothing moves") {
    TempDir dir;
    auto a = WakeBoard::open(dir.file("x.db"));
    auto b = WakeBoard::open(dir.file("x.db"));
    REQUIRE(a);
    REQUIRE(b);
    struct stat st {};
    CHECK(::stat(dir.file("x.db-wake").c_str(), &st) == 0);

    // Nothing bumps: the wait ends by its bound, reporting no change.
    CHECK_FALSE(a->wait(WakeBoard::kTasks, a->load(WakeBoard::kTasks), std::chrono::milliseconds(5)));
    // A stale `seen` returns at once: the counter moved before the wait began.
    auto before = a->load(WakeBoard::kTasks);
    b->bump(WakeBoard::kTasks);
    CHECK(a->load(WakeBoard::kTasks) == before + 1);
    CHECK(a->wait(WakeBoard::kTasks, before, std::chrono::hours(1)));

    // A waiter blocked (with a bound far beyond the test's) is woken by the other mapping.
    auto seen = a->load(WakeBoard::kInbox);
    auto woke = std::async(std::launch::async, [&] { return a->wait(WakeBoard::kInbox, seen, std::chrono::hours(1)); });
    // Bump only once the waiter is in: a bump before it would make the wait return at once,
    // which proves nothing about the wake-up.
    auto until = std::chrono::steady_clock::now() + kWait;
    while (!b->has_waiters(WakeBoard::kInbox) && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    REQUIRE(b->has_waiters(WakeBoard::kInbox));
    b->bump(WakeBoard::kInbox);
    REQUIRE(woke.wait_for(kWait) == std::future_status::ready);
    CHECK(woke.get());
    CHECK_FALSE(a->has_waiters(WakeBoard::kInbox));
}

TEST_CASE("a wake board is not made where the database is in memory or the file is someone else's") {
    TempDir dir;
    CHECK_FALSE(WakeBoard::open(":memory:"));
    CHECK_FALSE(WakeBoard::open(dir.file("missing-dir/x.db")));
    {
        // A file of the same name with other content: not ours, not touched.
        FILE* f = std::fopen(dir.file("y.db-wake").c_str(), "w");
        REQUIRE(f);
        std::fputs("not a wake-up file, but something a user keeps here", f);
        std::fclose(f);
    }
    CHECK_FALSE(WakeBoard::open(dir.file("y.db")));
}

TEST_CASE("work signals call a subscriber for other processes' work of its kinds, not for its own") {
    TempDir dir;
    auto board_a = WakeBoard::open(dir.file("x.db"));
    auto board_b = WakeBoard::open(dir.file("x.db"));
    REQUIRE(board_a);
    REQUIRE(board_b);
    auto a = std::make_unique<WorkSignals>(board_a.get());
    WorkSignals b(board_b.get());

    Calls tasks, inbox;
    auto tasks_id = a->subscribe(kWorkTasks, [&] { tasks.hit(); });
    a->subscribe(kWorkInbox | kWorkInstances, [&] { inbox.hit(); });

    b.committed(kWorkTasks);  // another process made a task
    REQUIRE(tasks.wait_for_more_than(0));

    // Its own commits wake nobody here; another process's inbox work wakes the inbox
    // subscriber only. The own commit goes first, so when the inbox call comes, the watcher
    // has looked past it already.
    a->committed(kWorkTasks | kWorkInbox);
    b.committed(kWorkInbox);
    REQUIRE(inbox.wait_for_more_than(0));
    CHECK(inbox.count() == 1);
    CHECK(tasks.count() == 1);

    // After unsubscribe the callback is never called again.
    a->unsubscribe(tasks_id);
    b.committed(kWorkTasks);
    b.committed(kWorkInstances);
    REQUIRE(inbox.wait_for_more_than(1));
    CHECK(tasks.count() == 1);

    // Destroying the signals stops the watcher without waiting for a bump.
    a.reset();
}

TEST_CASE("a SQLite store tells another store on the same file of the work its commits made") {
    TempDir dir;
    auto writer = open_sqlite(dir.file("s.db"));
    auto watcher = open_sqlite(dir.file("s.db"));
    Calls calls;
    auto id = watcher->subscribe_work(kWorkInstances, [&] { calls.hit(); });
    REQUIRE(id);

    NewInstance n;
    n.id = "i1";
    n.name = "orch";
    n.execution_id = "e1";
    n.start_event = R"({"t":"ExecutionStarted"})";
    std::promise<WriteResult> done;
    writer->create_instance(n, [&](const WriteResult& r) { done.set_value(r); });
    auto f = done.get_future();
    REQUIRE(f.wait_for(kWait) == std::future_status::ready);
    REQUIRE(f.get().ok);
    CHECK(calls.wait_for_more_than(0));
    watcher->unsubscribe_work(*id);
}
