// runtime/episode_commit.hpp — what an episode's decisions become: the commit and the local work.
//
// Pure functions, no threads, no store, no clock: `build_episode_commit` turns an episode's
// outcome (the instance as it stands after the episode, its new history, its decisions) into
// the store::EpisodeCommit that carries it and the work this host takes on itself once the
// commit is submitted (activities it runs, children it adopts, timers it watches).
// `merge_pending` folds a later episode's commit into a lingering earlier one of the same
// instance so that both go under one CAS, as one version step.
//
// The caller (Host::Impl::run_episode) keeps the locking and the sequencing: it fills in
// `first_seq` and `expected_version` under the host's mutex, and decides when to linger.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/execution.hpp"
#include "store/store.hpp"

namespace durable::detail {

// The instance after its episode, as far as the commit is concerned.
struct EpisodeOutcome {
    std::string instance_id, name, execution_id;  // execution_id: the new one after continue-as-new
    std::optional<std::string> parent_id;
    std::int64_t parent_task_id = -1;
    std::string parent_execution_id, correlation_id;
    std::string child_traceparent;            // W3C traceparent sub-orchestrations start under (empty: none)
    std::string host_id;
    store::Millis now = 0;
    store::Millis lease_ms = 0;               // children are created leased to this host until now + lease_ms
    Status status = Status::Running;
    bool terminal = false;
    bool reset_history = false;               // continue-as-new
    std::optional<std::string> new_input;     // continue-as-new: the next generation's input
    std::optional<Json> custom_status;
    Json output, error;                       // read when terminal (Completed / Terminated; Failed)
    const std::vector<Json>* history = nullptr;   // the episode's new events (not copied)
    std::vector<std::int64_t> consumed_inbox;
};

// What the host does itself once the commit is submitted.
struct EpisodeLocalWork {
    std::vector<Decision> activities;   // run here, under the instance lease (no task row)
    std::vector<std::string> adopt;     // children created leased to this host
    std::vector<std::int64_t> timers;   // fire times to wake the dispatcher for
};

struct EpisodePlan {
    store::EpisodeCommit commit;        // first_seq and expected_version left for the caller
    EpisodeLocalWork local;
};

// What this host runs itself. Activities it does not become activity_tasks rows in the same
// commit, for a host that registers them; sub-orchestrations it does not are created
// unleased, for a host that registers them to claim. An empty function: all of them.
struct LocalCode {
    std::function<bool(const std::string& activity)> activity;
    std::function<bool(const std::string& orchestration)> orchestration;
    // The version a new sub-orchestration records: the newest this host registers (empty
    // function or nullopt: the first host to run it decides).
    std::function<std::optional<std::string>(const std::string& orchestration)> version;
};
// Fresh execution ids for sub-orchestrations (a parameter so tests can make them predictable).
using NewId = std::function<std::string()>;

EpisodePlan build_episode_commit(const EpisodeOutcome& outcome, std::vector<Decision> decisions,
                                 const LocalCode& local, const NewId& new_id);

// An episode's commit with what its callback needs. A lingering commit of an instance is
// merged into its next episode's (one CAS, one version step for both).
struct PendingCommit {
    store::EpisodeCommit commit;
    std::vector<std::int64_t> consumed;
    bool terminal = false;
    Status status = Status::Running;
    std::vector<std::string> adopt;
    std::chrono::steady_clock::time_point since;  // when the first episode in it ended
};

// Folds `later` (the next episode's commit of the same instance) into `earlier` (the lingering
// one): lists append, the instance row takes the later state, the CAS stays the earlier one's.
// Every field of both structs is named in the definition (structured bindings): adding a field
// without deciding how it merges does not compile.
void merge_pending(PendingCommit& earlier, PendingCommit&& later);

}  // namespace durable::detail
