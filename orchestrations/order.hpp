// orchestrations/order.hpp — function chaining with a sub-orchestration: an order pipeline.
//
// `order_pipeline` runs validate_order -> reserve_stock -> the `payment` sub-orchestration ->
// ship_order, passing typed data from step to step. Business refusals end the order cleanly:
// an invalid order or missing stock gives status "rejected"; a declined payment releases the
// reserved stock (the compensation) and gives "payment_declined". Transient failures of the
// simulated services are retried in-process (the activities' ResiliencePolicy) and then
// durably (RetryPolicy in the orchestrators, whose waits are durable timers).
//
// `payment` authorizes and then captures the amount. A card named "declined", or an amount
// over 10,000, is declined: the gateway answers so (a result, not an error), nothing is retried.
//
// Test hooks, all in the input: an item whose sku starts with "OUT-" is out of stock; card
// "declined" is declined; `sim` sets latency and transient failure rate.
#pragma once

#include <string>
#include <vector>

#include <durable/durable.hpp>

#include "orchestrations/simulation.hpp"

namespace durable::orchestrations {

inline constexpr const char* kOrderPipeline = "order_pipeline";
inline constexpr const char* kPayment = "payment";

struct OrderItem {
    std::string sku;
    int quantity = 1;
    double price = 0.0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(OrderItem, sku, quantity, price)

struct Order {
    std::string order_id;
    std::string customer;
    std::vector<OrderItem> items;
    std::string card = "4242-4242";
    Simulation sim;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Order, order_id, customer, items, card, sim)

// What validate_order found.
struct ValidatedOrder {
    std::string order_id;
    double amount = 0.0;
    int units = 0;
    std::string host;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ValidatedOrder, order_id, amount, units, host)

struct StockRequest {
    std::string order_id;
    std::vector<OrderItem> items;
    Simulation sim;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(StockRequest, order_id, items, sim)

struct Reservation {
    std::string reservation_id;
    std::string order_id;
    int units = 0;
    std::string host;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Reservation, reservation_id, order_id, units, host)

struct PaymentRequest {
    std::string order_id;
    std::string customer;
    double amount = 0.0;
    std::string card;
    Simulation sim;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PaymentRequest, order_id, customer, amount, card, sim)

struct PaymentResult {
    std::string order_id;
    std::string status;  // "authorized" (between the steps), "captured" or "declined"
    std::string payment_id;
    double amount = 0.0;
    std::string reason;  // why it was declined
    std::string host;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PaymentResult, order_id, status, payment_id, amount, reason, host)

struct ShipmentRequest {
    std::string order_id;
    std::string customer;
    std::string reservation_id;
    Simulation sim;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ShipmentRequest, order_id, customer, reservation_id, sim)

struct Shipment {
    std::string tracking;
    std::string host;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Shipment, tracking, host)

struct OrderResult {
    std::string order_id;
    std::string status;  // "shipped", "rejected" or "payment_declined"
    double amount = 0.0;
    std::string reservation_id, payment_id, tracking;
    std::string reason;  // why it was rejected or declined
    std::string host;    // the host that ran the last step that succeeded
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(OrderResult, order_id, status, amount, reservation_id, payment_id,
                                                tracking, reason, host)

// The orchestrators, for registries that want them under other names.
Task<OrderResult> order_pipeline(OrchestrationContext& ctx, Order order);
Task<PaymentResult> payment(OrchestrationContext& ctx, PaymentRequest request);

// Registers order_pipeline, payment and their activities (validate_order, reserve_stock,
// release_stock, authorize_payment, capture_payment, ship_order).
void register_order(Registry& registry);

}  // namespace durable::orchestrations
