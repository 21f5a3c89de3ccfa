// The eternal monitor: one check per execution, continue_as_new between cycles.
#include "orchestrations/monitor.hpp"

#include <fmt/format.h>

#include "orchestrations/policies.hpp"

namespace durable::orchestrations {
namespace {

HealthReading check_health(ActivityContext& ctx, const HealthCheck& check) {
    simulate(ctx, check.sim, fmt::format("check/{}#{}", check.target, check.cycle));
    double u = deterministic_unit(check.sim.seed, "health/" + check.target, check.cycle, 0);
    return HealthReading{expected_healthy(check), 5.0 + 200.0 * u, host_label()};
}

}  // namespace

bool expected_healthy(const HealthCheck& check) {
    return deterministic_unit(check.sim.seed, "health/" + check.target, check.cycle, 1) >= check.unhealthy_rate;
}

Task<MonitorResult> monitor(OrchestrationContext& ctx, MonitorState state) {
    MonitorResult result;
    result.target = state.target;

    HealthReading reading;
    try {
        HealthCheck check{state.target, state.cycle, state.unhealthy_rate, state.sim};
        reading = co_await ctx.call_activity<HealthReading>("check_health", check);
    } catch (const TaskFailed& e) {
        ctx.log_info("monitor of {}: check {} failed, counted as unhealthy: {}", state.target, state.cycle, e.what());
        reading.healthy = false;
    }
    state.cycle += 1;
    state.streak = reading.healthy ? state.streak + 1 : 0;
    result.cycles = state.cycle;
    result.host = reading.host;
    ctx.set_custom_status(
        Json{{"cycle", state.cycle}, {"healthy", reading.healthy}, {"value", reading.value}, {"streak", state.streak}});

    if (state.stop_after_healthy > 0 && state.streak >= state.stop_after_healthy) {
        result.reason = "healthy";
        co_return result;
    }
    if (state.max_cycles > 0 && state.cycle >= state.max_cycles) {
        result.reason = "max_cycles";
        co_return result;
    }

    auto stop = ctx.wait_for_external_event<Json>("stop");
    auto sleep = ctx.create_timer(std::chrono::milliseconds(state.interval_ms));
    if (co_await when_any(stop, sleep) == 0) {
        Json by = co_await std::move(stop);
        result.reason = "stopped";
        result.stopped_by = by.is_string() ? by.get<std::string>() : by.is_object() ? by.value("by", "") : "";
        co_return result;
    }
    ctx.continue_as_new(state);
    co_return result;
}

void register_monitor(Registry& registry) {
    registry.add_orchestrator(kMonitor, monitor);
    // The monitored service gets a breaker: while it is down, checks fail fast.
    registry.add_activity("check_health", check_health, ActivitySettings{guarded_policy()});
}

}  // namespace durable::orchestrations
