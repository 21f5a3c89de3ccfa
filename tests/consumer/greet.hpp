// The one orchestration both consumer programs run: "greet" calls activity "hello" once.
#pragma once

#include <durable/durable.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace consumer {

inline durable::Task<std::string> greet(durable::OrchestrationContext& ctx, std::string name) {
    co_return co_await ctx.call_activity<std::string>("hello", name);
}

inline std::shared_ptr<durable::Registry> greet_registry() {
    auto registry = std::make_shared<durable::Registry>();
    registry->add_activity("hello", [](std::string name) { return "hello " + name; });
    registry->add_orchestrator("greet", greet);
    return registry;
}

// Schedules greet("consumer") on the host and waits for it (at most a minute).
inline std::pair<std::string, durable::InstanceState> run_greet(durable::Host& host) {
    auto client = host.client();
    auto id = client.schedule("greet", "consumer");
    auto state = client.wait_for_completion(id, std::chrono::seconds(60));
    return {id, state};
}

}  // namespace consumer
