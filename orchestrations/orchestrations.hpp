// orchestrations/orchestrations.hpp — the example orchestrations, all at once.
//
// | name           | pattern                                  | header                       |
// | -------------- | ---------------------------------------- | ---------------------------- |
// | order_pipeline | chaining + a sub-orchestration (payment) | orchestrations/order.hpp     |
// | payment        | sub-orchestration with durable retries   | orchestrations/order.hpp     |
// | word_count     | fan-out / fan-in over N documents        | orchestrations/word_count.hpp|
// | approval       | human interaction, durable timeout       | orchestrations/approval.hpp  |
// | booking_saga   | saga with compensation                   | orchestrations/booking.hpp   |
// | monitor        | eternal, continue_as_new each cycle      | orchestrations/monitor.hpp   |
#pragma once

#include <string>
#include <vector>

#include <durable/durable.hpp>

#include "orchestrations/approval.hpp"
#include "orchestrations/booking.hpp"
#include "orchestrations/monitor.hpp"
#include "orchestrations/order.hpp"
#include "orchestrations/policies.hpp"
#include "orchestrations/simulation.hpp"
#include "orchestrations/word_count.hpp"

namespace durable::orchestrations {

// Registers every example orchestration and activity above.
void register_all(Registry& registry);

// A registry holding all of them, ready for a Host.
std::shared_ptr<Registry> make_registry();

// An example input for orchestration `name` (what `durable start NAME` uses without
// --input), or null JSON for an unknown name.
Json example_input(const std::string& name);

}  // namespace durable::orchestrations
