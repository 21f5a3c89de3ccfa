// LeaderCommits: the thread-local mark a store reads to let a thread commit its own writes.
#include "store/store.hpp"

namespace durable::store {

namespace {

thread_local bool g_leader_commits = false;

}  // namespace

LeaderCommits::LeaderCommits() : previous_(g_leader_commits) { g_leader_commits = true; }

LeaderCommits::~LeaderCommits() { g_leader_commits = previous_; }

bool LeaderCommits::active() { return g_leader_commits; }

}  // namespace durable::store
