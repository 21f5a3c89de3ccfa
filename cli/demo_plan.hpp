// cli/demo_plan.hpp — what `durable demo` schedules, what it does to the instances while
// they run (approve, reject, stop), and what final state each one must reach.
//
// The plan is a pure function of the instance count and a seed: the same arguments give the
// same instances with the same inputs and the same expected outcomes. Instance ids start
// with "demo-", which is also how the demo recognises a file it made earlier.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <durable/durable.hpp>

namespace durable::cli::demo {

inline constexpr const char* kIdPrefix = "demo-";

// What the demo does to an instance while it runs.
enum class Action {
    None,
    ApproveWhenWaiting,    // raise `approved` once the approval waits
    RejectWhenWaiting,     // raise `rejected` once the approval waits
    ApproveWhenEscalated,  // raise `approved` only after the timeout escalated it
    StopAfterCycles,       // raise `stop` on a monitor after a few cycles
};

struct Item {
    std::string id, name;
    Json input;
    Action action = Action::None;
    std::string expected;  // the outcome it must reach, as outcome_of() words it
    std::string label;     // what it shows in the summary, e.g. "compensated (car failed)"
};

struct Plan {
    std::vector<Item> items;
};

// Builds `instances` items: orders ~40%, sagas ~25%, approvals ~15%, word counts ~10%,
// monitors ~10% (at least one of each when instances >= 20). Approvals escalate after
// `approval_timeout`; those nobody answers expire as long again after that.
Plan make_plan(int instances, std::uint64_t seed, std::chrono::milliseconds approval_timeout);

// The outcome word of a finished instance: "shipped", "compensated", "approved", ... from its
// output, or its status ("Failed", "Terminated") when it did not complete.
std::string outcome_of(const InstanceState& s);

// Empty if `s` is what `item` expects; otherwise what is wrong, in a sentence.
std::string judge(const Item& item, const InstanceState& s);

// The event to raise on `item` now, given its current state, if any.
struct Raise {
    std::string event;
    Json data;
};
std::optional<Raise> next_raise(const Item& item, const InstanceState& s);

}  // namespace durable::cli::demo
