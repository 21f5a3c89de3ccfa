// store/sqlite/wake.hpp — wake-ups across the processes that share one SQLite file.
//
// SQLite tells no process what another one committed, so without help a host finds other
// processes' work only by polling. WakeBoard is a small shared-memory file next to the
// database (`<db>-wake`, mapped MAP_SHARED by every process that opens the database; all of
// them are on one machine, as SQLite's WAL requires) holding a few 32-bit counters. A writer
// bumps a counter after a commit that made work of its kind and wakes the waiters (a futex on
// the shared page; the syscall only when someone waits); a waiter blocks until the counter
// moves or its timeout passes. Nothing is held across processes: a waiter that dies leaves at
// most a waiter count behind (writers then make one needless syscall), a writer that dies
// wakes nobody and waiters fall back to their timeout, i.e. to polling.
//
// WorkSignals is the store's side: it bumps the work counters after commits and runs one
// watcher thread per store that calls its subscribers when another process bumped a counter
// they asked for (its own process's bumps are told apart and ignored: the process knows its
// own work already).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "store/store.hpp"

namespace durable::store::sqlite {

class WakeBoard {
public:
    enum Word : int {
        kAny = 0,     // bumped with every one of the work words below
        kTasks,       // activity tasks became claimable (inserted or released)
        kInbox,       // inbox rows were written (messages, results, timers, new instances)
        kInstances,   // instances became claimable (created, released, orphaned)
        kUnlock,      // a write transaction ended: the database lock is free
        kWordCount
    };

    // Maps `<db_path>-wake`, creating it if missing. nullptr when that is not possible (a
    // read-only directory, an in-memory database): callers then poll as before.
    static std::unique_ptr<WakeBoard> open(const std::string& db_path);
    ~WakeBoard();
    WakeBoard(const WakeBoard&) = delete;
    WakeBoard& operator=(const WakeBoard&) = delete;

    std::uint32_t load(Word w) const;
    // Increments the counter and wakes its waiters (the syscall only when one waits).
    void bump(Word w);
    // Wakes the counter's waiters without moving it (they see no change and wait again, or
    // look at their own stop flag).
    void wake(Word w);
    // Blocks while the counter equals `seen`, at most `timeout`. True when it moved.
    bool wait(Word w, std::uint32_t seen, std::chrono::microseconds timeout);
    // Whether anyone waits on the counter now (may count a waiter that died).
    bool has_waiters(Word w) const;

private:
    WakeBoard(int fd, void* base);
    std::uint32_t* word(Word w, int field) const;

    int fd_;
    void* base_;
};

class WorkSignals {
public:
    explicit WorkSignals(WakeBoard* board) : board_(board) {}
    ~WorkSignals();  // stops and joins the watcher
    WorkSignals(const WorkSignals&) = delete;
    WorkSignals& operator=(const WorkSignals&) = delete;

    // After a durable commit that made the work in `bits`: tells the other processes.
    void committed(unsigned bits);
    // Calls `on_work` (on the watcher thread; keep it short) when another process commits
    // work of a kind in `bits` (store::WorkKind). Returns an id for unsubscribe.
    std::uint64_t subscribe(unsigned bits, std::function<void()> on_work);
    // After it returns, the subscriber's callback is not running and is never called again.
    void unsubscribe(std::uint64_t id);

private:
    void watch();
    struct Marks {
        std::uint32_t shared[WakeBoard::kWordCount] = {};
        std::uint32_t local[WakeBoard::kWordCount] = {};
    };
    Marks marks();  // takes local_mu_

    WakeBoard* board_;
    std::mutex local_mu_;
    std::uint32_t local_[WakeBoard::kWordCount] = {};  // this process's bumps; guarded by local_mu_

    std::mutex mu_;
    std::condition_variable cv_;
    std::map<std::uint64_t, std::pair<unsigned, std::function<void()>>> subs_;  // guarded by mu_
    std::uint64_t next_id_ = 1;   // guarded by mu_
    Marks seen_;                  // what the watcher has looked at; guarded by mu_
    bool stop_ = false;           // guarded by mu_
    std::thread watcher_;         // started by the first subscribe, joined by the destructor
};

}  // namespace durable::store::sqlite
