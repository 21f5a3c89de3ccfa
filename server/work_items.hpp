// server/work_items.hpp — work items on their way to connected worker streams and back.
//
// A producer (the remote activity of remote_activity.hpp) submits a WorkItem under a key
// that names what it is for ("a:INSTANCE:TASK" for an activity, "o:INSTANCE" for an
// orchestrator step, so an instance has at most one orchestrator item out at a time). The
// hub hands queued items to open streams, the least loaded first, each stream holding at most
// `max_outstanding` items that were sent and not yet answered (backpressure: a worker that does
// not answer gets no more). A worker's answer completes the outstanding item of its key.
//
// A stream that closes (cancelled, disconnected, deadline, server stopping) gives its
// outstanding items back at once, to the front of the queue, for another stream. An answer
// for a key that is not outstanding — completed already, withdrawn because its activity was
// cancelled (the instance moved to another host, or it was terminated), or refused at stop —
// is fenced: complete() returns false and nothing changes. An item given back and sent again
// may be answered by either worker, once: activities run at least once.
//
// An orchestrator item is answered by the stream it was sent on: an answer from another peer,
// or one that comes while the item waits to be sent again after its stream ended, is fenced
// too (the step goes out again, whole, to the next stream).
//
// Stopping happens in two steps: end_streams() (no new stream, open ones end), then stop()
// (every item still queued or outstanding is refused, its producer told so).
//
// A stream is read either by a thread blocked in next(), or without a thread: the `wake`
// given to open_stream() is called (without the lock, from the thread that assigned the
// items or ended the stream) whenever items were assigned to it or it ended, and the reader
// then take()s what is ready. Items are shared, not copied, on their way to a stream.
//
// Thread safety: every method may be called from any thread. Callbacks run without the lock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "orchestrator_service.pb.h"

namespace durable::server {

// What came back for an item: a worker's answer, or a refusal (the hub stopped).
struct WorkResult {
    enum class Kind { Activity, Orchestrator, Refused };
    Kind kind = Kind::Refused;
    ::ActivityResponse activity;
    ::OrchestratorResponse orchestrator;
    std::string refused;  // why, when Refused
    // Orchestrator answers: told once whether the answer was committed (see RemoteReply::applied).
    std::function<void(bool committed, const std::string& why)> applied;
};

std::string activity_key(const std::string& instance_id, std::int64_t task_id);
std::string orchestrator_key(const std::string& instance_id);

class WorkItemHub {
public:
    struct Stream;
    using Done = std::function<void(WorkResult)>;

    // Outstanding items per stream, at most (at least 1).
    explicit WorkItemHub(std::size_t max_outstanding = 64);

    // ---- worker streams ----
    // A new stream for the worker at `peer` (gRPC's peer address; answers to its orchestrator
    // items must come from it), or null once end_streams() was called.
    // `wake` (may be empty) is called whenever items were assigned to the stream or it ended.
    std::shared_ptr<Stream> open_stream(std::string peer = {}, std::function<void()> wake = {});
    // The next item for `s`, waiting until `until`; nullopt on timeout, or when the stream
    // was ended (ended(s) then says so).
    std::optional<::WorkItem> next(const std::shared_ptr<Stream>& s, std::chrono::steady_clock::time_point until);
    // The items assigned to `s` and not yet taken, at most `max`, without waiting (none when
    // the stream has ended).
    std::vector<std::shared_ptr<const ::WorkItem>> take(const std::shared_ptr<Stream>& s, std::size_t max);
    bool ended(const std::shared_ptr<Stream>& s) const;
    // The stream is gone: its outstanding items go back to the queue, first in line.
    void close_stream(const std::shared_ptr<Stream>& s);

    // ---- producers ----
    // Queues `item` under `key`; false (and nothing queued) if an item with that key is
    // already queued or outstanding, or the hub has stopped.
    bool submit(const std::string& key, ::WorkItem item, Done done);
    // Takes the item back (its work is no longer wanted); a later answer is fenced.
    void withdraw(const std::string& key);

    // ---- answers ----
    // Completes the item of `key` with `r`; false when no such item is queued or outstanding,
    // or (an orchestrator item, `peer` given) it is not out on a stream of `peer`.
    bool complete(const std::string& key, WorkResult r, const std::string& peer = {});

    // ---- stopping ----
    void end_streams();
    void stop();

    struct Stats {
        std::size_t queued = 0, outstanding = 0, streams = 0;
    };
    Stats stats() const;
    std::size_t max_outstanding() const { return max_; }

private:
    struct Item {
        std::shared_ptr<const ::WorkItem> item;
        Done done;
        Stream* stream = nullptr;  // null while queued
    };
    using Wakes = std::vector<std::shared_ptr<Stream>>;
    // Assigns queued items to streams; the streams that got some are added to `wakes`.
    void assign_locked(Wakes& wakes);
    static void wake(const Wakes& wakes);
    void detach_locked(const std::string& key, Item& item);

    const std::size_t max_;
    mutable std::mutex mu_;
    std::condition_variable cv_;                     // streams wait for items here
    std::deque<std::string> queue_;                  // guarded by mu_: keys waiting for a stream
    std::unordered_map<std::string, Item> items_;    // guarded by mu_: queued and outstanding
    std::vector<std::shared_ptr<Stream>> streams_;   // guarded by mu_
    bool streams_ended_ = false;                     // guarded by mu_
    bool stopped_ = false;                           // guarded by mu_
};

}  // namespace durable::server
