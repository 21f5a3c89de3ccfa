// The activity_sequence orchestration (see activity_sequence.hpp).
#include "server/activity_sequence.hpp"

#include <durable/durable.hpp>

namespace durable::server {
namespace {

Task<Json> activity_sequence(OrchestrationContext& ctx, Json input) {
    if (!input.is_object() || !input.contains("activities") || !input["activities"].is_array()) {
        throw InvalidInput(R"(activity_sequence needs {"activities": [{"name": ..., "input": ...}, ...]})");
    }
    Json results = Json::array();
    for (const auto& step : input["activities"]) {
        if (!step.is_object() || !step.contains("name") || !step["name"].is_string()) {
            throw InvalidInput("each step of activity_sequence needs a \"name\": " + step.dump());
        }
        Json in = step.contains("input") ? step["input"] : Json();
        results.push_back(co_await ctx.call_activity<Json>(step["name"].get<std::string>(), in));
    }
    co_return results;
}

}  // namespace

void register_activity_sequence(Registry& registry) { registry.add_orchestrator(kActivitySequence, activity_sequence); }

}  // namespace durable::server
