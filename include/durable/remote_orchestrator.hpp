// durable/remote_orchestrator.hpp — orchestrations whose code runs outside the host.
//
// A host whose Registry has a default orchestrator (Registry::set_default_orchestrator) runs
// every orchestration it has no C++ code for through it: the instance's history lives here
// (claims, leases, the one-transaction commit, timers, inbox), the decisions come from code
// elsewhere that replays the history it is sent (a `durable serve` process hands each step to
// a connected Durable Task worker). A step is asynchronous: the host sends it and no thread
// waits; the reply is applied by the host's episode workers as one episode, committed like a
// C++ episode's decisions (history appended, inbox rows consumed, tasks / timers / messages
// / children written, the lease CAS).
//
// At most one step of an instance is out at a time. While it is out, new events wait in
// memory (a terminate, suspend or resume does not: it is applied at once, and a finished
// instance's step is withdrawn). Events are the JSON objects Client::history returns; task
// ids are the code's own (its action ids).
//
// Thread safety: dispatch() and withdraw() are called from the host's threads, possibly at
// once; an implementation calls `reply` from any thread, once, and never from inside dispatch().
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace durable {

// What the code is sent: the history of the current execution, split at what it has seen.
struct RemoteStep {
    std::string instance_id, name, execution_id;
    std::vector<nlohmann::json> past;   // seen in an earlier step (or committed before this host had it)
    std::vector<nlohmann::json> fresh;  // not seen yet
    std::int64_t now_ms = 0;            // the step's time (what the code's replay-safe clock says)
};

// The code's answer to a step.
struct RemoteDecisions {
    // Scheduling events with the code's task ids in "id": TaskScheduled {name, input},
    // TimerCreated {fire_at}, SubOrchestrationCreated {name, instance (may be empty), input},
    // EventSent {name, instance, input}. Only new ones: ids already in history must repeat
    // what history holds (they are then ignored), else the instance fails (non-determinism).
    std::vector<nlohmann::json> scheduled;
    std::optional<nlohmann::json> custom_status;  // set: the new custom status
    enum class End { None, Completed, Failed, Terminated, ContinuedAsNew };
    End end = End::None;
    nlohmann::json result;                  // Completed: the output; ContinuedAsNew: the next input
    nlohmann::json error;                   // Failed: {type, message, details}
    std::string terminate_reason;           // Terminated
    std::vector<nlohmann::json> carryover;  // ContinuedAsNew: EventRaised events for the next generation
};

struct RemoteReply {
    // No answer will come (the executor stopped); the host sends the step again to a later
    // owner of the instance (a restart, a takeover).
    bool refused = false;
    std::string why;
    RemoteDecisions decisions;
    // Told once whether the answer was committed (durable) or not, and why not (the host lost
    // the instance, it finished meanwhile, the commit failed). May be empty.
    std::function<void(bool committed, const std::string& why)> applied;
};

class RemoteOrchestrator {
public:
    virtual ~RemoteOrchestrator() = default;
    // Hands `step` to the code. False when it cannot take it now (stopping): the instance is
    // then left for a later owner. `reply` is called once the code answers or the executor gives up.
    virtual bool dispatch(RemoteStep step, std::function<void(RemoteReply)> reply) = 0;
    // The host no longer wants the step of `instance_id` (it lost or finished the instance):
    // an answer that comes later must not reach it (the executor refuses it).
    virtual void withdraw(const std::string& instance_id) = 0;
    // Whether code is connected to run steps now. A host claims instances it has no C++ code
    // for only while this says so (they would otherwise wait here instead of on a host that
    // can run them).
    virtual bool available() const { return true; }
};

}  // namespace durable
