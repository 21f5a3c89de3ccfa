// orchestrations/simulation.hpp — simulated work for the example activities.
//
// The example activities stand in for calls to real services (a payment gateway, a stock
// database, an airline). `Simulation` says how such a call behaves: how long it takes and how
// often it fails with a transient error. Failures are deterministic under a seed: whether an
// attempt fails depends only on the seed, a key taken from the activity's input, the task id
// and the attempt number, never on global randomness or the clock, so a test or a demo run with
// the same inputs sees the same failures.
//
// The host label names the process that runs activities (a worker's host id); activities put
// it into their results so the demo can tell which host finished what. It is process-wide
// state read by activities only, never by orchestrator code.
//
// Thread safety: every function here may be called from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <durable/durable.hpp>
#include <nlohmann/json.hpp>

namespace durable::orchestrations {

// How a simulated call behaves. Omitted JSON fields keep these defaults.
struct Simulation {
    std::int64_t latency_ms = 0;   // each attempt takes this long (cancellable)
    double failure_rate = 0.0;     // share of attempts failing with SimulatedFailure, in [0, 1]
    std::uint64_t seed = 0;        // with the input's key, decides which attempts fail
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Simulation, latency_ms, failure_rate, seed)

// A transient failure of a simulated dependency: worth retrying.
class SimulatedFailure : public Error {
public:
    using Error::Error;
};

// A refusal by the business logic (card declined, no rooms left): retrying cannot help, so
// the example policies do not retry it and the circuit breakers do not count it.
class Declined : public Error {
public:
    using Error::Error;
};

// A number in [0, 1) that depends only on its arguments (FNV-1a mixed with splitmix64).
double deterministic_unit(std::uint64_t seed, std::string_view key, std::int64_t task_id, int attempt);

// Runs one simulated attempt: waits `sim.latency_ms` (returns early, throwing Cancelled, if
// the attempt is cancelled) and then throws SimulatedFailure if this attempt is one of the
// failing ones. `key` names the call (e.g. "charge/order-17").
void simulate(const ActivityContext& ctx, const Simulation& sim, std::string_view key);

// The transience test of the example policies: Declined and the default non-transient
// errors (InvalidInput, CircuitOpen, Cancelled) are not retried.
bool is_transient(const std::exception_ptr& error);

// Sets the label activities of this process report as their host (the worker's host id).
void set_host_label(std::string label);
// The label set above, or "<hostname>-<pid>" if none was set.
std::string host_label();

// A FNV-1a hash of `text`, for deriving deterministic values from input fields.
std::uint64_t stable_hash(std::string_view text, std::uint64_t seed = 0);

}  // namespace durable::orchestrations
