// orchestrations/monitor.hpp — an eternal orchestration: a health monitor.
//
// Each execution of `monitor` is one cycle: check the target's health (check_health), update
// the streak of healthy readings, then sleep `interval_ms` on a durable timer and
// continue_as_new with the updated state, so the history never grows. It stops (completes)
// when the target has been healthy `stop_after_healthy` cycles in a row, after `max_cycles`
// cycles, or when an external event `stop` arrives during the sleep (or before it: raised
// events are buffered and carried over to the next cycle). 0 disables either condition.
//
// Readings are deterministic: whether cycle N is healthy depends on `sim.seed`, the target
// and N (`unhealthy_rate` of them are not). A check that fails (transient failures, an open
// breaker) counts as an unhealthy reading.
//
// Custom status after each check: {"cycle", "healthy", "value", "streak"}.
#pragma once

#include <cstdint>
#include <string>

#include <durable/durable.hpp>

#include "orchestrations/simulation.hpp"

namespace durable::orchestrations {

inline constexpr const char* kMonitor = "monitor";

struct MonitorState {
    std::string target = "service";
    std::int64_t interval_ms = 1000;
    int stop_after_healthy = 0;  // healthy cycles in a row that end the monitor; 0: never
    int max_cycles = 0;          // 0: no limit
    double unhealthy_rate = 0.3;
    int cycle = 0;               // cycles done so far (carried by continue_as_new)
    int streak = 0;              // healthy readings in a row so far
    Simulation sim;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MonitorState, target, interval_ms, stop_after_healthy, max_cycles,
                                                unhealthy_rate, cycle, streak, sim)

struct HealthCheck {
    std::string target;
    int cycle = 0;
    double unhealthy_rate = 0.3;
    Simulation sim;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HealthCheck, target, cycle, unhealthy_rate, sim)

struct HealthReading {
    bool healthy = false;
    double value = 0.0;  // a simulated latency figure, ms
    std::string host;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HealthReading, healthy, value, host)

struct MonitorResult {
    std::string target;
    int cycles = 0;
    std::string reason;  // "healthy" (the streak was reached), "max_cycles" or "stopped"
    std::string stopped_by;
    std::string host;    // the host that ran the last check
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MonitorResult, target, cycles, reason, stopped_by, host)

Task<MonitorResult> monitor(OrchestrationContext& ctx, MonitorState state);

// Whether cycle `cycle` of `check` reads healthy (what check_health returns).
bool expected_healthy(const HealthCheck& check);

// Registers monitor and check_health.
void register_monitor(Registry& registry);

}  // namespace durable::orchestrations
