// server/activity_sequence.hpp — "activity_sequence", a C++ orchestration that `durable serve`
// registers so that activities living in connected workers (any language) can be driven
// durably without an orchestrator of their own: it calls the listed activities one after
// the other and returns their results.
//
//   input:  {"activities": [{"name": "greet", "input": "Tokyo"}, ...]}
//   output: [result, ...]
//
// An activity's failure fails the instance with the activity's error type and message.
#pragma once

#include <durable/registry.hpp>

namespace durable::server {

inline constexpr const char* kActivitySequence = "activity_sequence";

void register_activity_sequence(Registry& registry);

}  // namespace durable::server
