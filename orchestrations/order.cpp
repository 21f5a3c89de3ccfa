// The order pipeline (chaining), its payment sub-orchestration and their activities.
#include "orchestrations/order.hpp"

#include <cmath>
#include <fmt/format.h>

#include "orchestrations/policies.hpp"

// Orchestrator code here never puts a temporary with a destructor inside a co_await
// expression (a named local is built first): GCC 12 destroys such temporaries twice.

namespace durable::orchestrations {
namespace {

using namespace std::chrono_literals;

constexpr double kCardLimit = 10'000.0;

std::string short_code(std::string_view prefix, std::string_view key, std::uint64_t seed) {
    return fmt::format("{}-{:08x}", prefix, stable_hash(key, seed) & 0xffffffffULL);
}

ValidatedOrder validate_order(ActivityContext& ctx, const Order& order) {
    simulate(ctx, order.sim, "validate/" + order.order_id);
    if (order.order_id.empty()) throw Declined("the order has no order_id");
    if (order.items.empty()) throw Declined(fmt::format("order '{}' has no items", order.order_id));
    ValidatedOrder v{order.order_id, 0.0, 0, host_label()};
    for (const auto& item : order.items) {
        if (item.sku.empty()) throw Declined(fmt::format("order '{}' has an item without a sku", order.order_id));
        if (item.quantity <= 0 || item.price < 0.0) {
            throw Declined(fmt::format("order '{}': item '{}' has quantity {} and price {}; both must be positive",
                                       order.order_id, item.sku, item.quantity, item.price));
        }
        v.units += item.quantity;
        v.amount += item.price * item.quantity;
    }
    v.amount = std::round(v.amount * 100.0) / 100.0;
    return v;
}

Reservation reserve_stock(ActivityContext& ctx, const StockRequest& req) {
    simulate(ctx, req.sim, "reserve/" + req.order_id);
    int units = 0;
    for (const auto& item : req.items) {
        if (item.sku.rfind("OUT-", 0) == 0) throw Declined(fmt::format("'{}' is out of stock", item.sku));
        units += item.quantity;
    }
    return Reservation{short_code("RSV", req.order_id, req.sim.seed), req.order_id, units, host_label()};
}

Reservation release_stock(ActivityContext& ctx, const Reservation& r) {
    simulate(ctx, Simulation{}, "release/" + r.order_id);
    return Reservation{r.reservation_id, r.order_id, 0, host_label()};
}

PaymentResult authorize_payment(ActivityContext& ctx, const PaymentRequest& req) {
    simulate(ctx, req.sim, "authorize/" + req.order_id);
    PaymentResult p;
    p.order_id = req.order_id;
    p.amount = req.amount;
    p.host = host_label();
    if (req.card == "declined") {
        p.status = "declined";
        p.reason = fmt::format("card '{}' was declined by the issuer", req.card);
    } else if (req.amount > kCardLimit) {
        p.status = "declined";
        p.reason = fmt::format("amount {:.2f} is over the card limit of {:.2f}", req.amount, kCardLimit);
    } else {
        p.status = "authorized";
        p.payment_id = short_code("PAY", req.order_id, req.sim.seed);
    }
    return p;
}

PaymentResult capture_payment(ActivityContext& ctx, PaymentResult auth) {
    simulate(ctx, Simulation{}, "capture/" + auth.order_id);
    auth.status = "captured";
    auth.host = host_label();
    return auth;
}

Shipment ship_order(ActivityContext& ctx, const ShipmentRequest& req) {
    simulate(ctx, req.sim, "ship/" + req.order_id);
    return Shipment{short_code("TRK", req.order_id + "/" + req.reservation_id, req.sim.seed), host_label()};
}

}  // namespace

Task<PaymentResult> payment(OrchestrationContext& ctx, PaymentRequest request) {
    ActivityOptions retry{durable_retry(4, 200ms)};
    ctx.set_custom_status(Json{{"step", "authorizing"}});
    auto auth = co_await ctx.call_activity<PaymentResult>("authorize_payment", request, retry);
    if (auth.status == "declined") co_return auth;
    ctx.set_custom_status(Json{{"step", "capturing"}});
    co_return co_await ctx.call_activity<PaymentResult>("capture_payment", auth, retry);
}

Task<OrderResult> order_pipeline(OrchestrationContext& ctx, Order order) {
    ActivityOptions retry{durable_retry(4, 200ms)};
    OrderResult result;
    result.order_id = order.order_id;

    ctx.set_custom_status(Json{{"step", "validating"}});
    ValidatedOrder valid;
    try {
        valid = co_await ctx.call_activity<ValidatedOrder>("validate_order", order, retry);
    } catch (const TaskFailed& e) {
        if (!is_declined(e)) throw;
        result.status = "rejected";
        result.reason = e.what();
        co_return result;
    }
    result.amount = valid.amount;
    result.host = valid.host;

    ctx.set_custom_status(Json{{"step", "reserving"}});
    Reservation reservation;
    try {
        StockRequest stock{order.order_id, order.items, order.sim};
        reservation = co_await ctx.call_activity<Reservation>("reserve_stock", stock, retry);
    } catch (const TaskFailed& e) {
        if (!is_declined(e)) throw;
        result.status = "rejected";
        result.reason = e.what();
        co_return result;
    }
    result.reservation_id = reservation.reservation_id;

    ctx.set_custom_status(Json{{"step", "charging"}});
    SubOrchestrationOptions sub;
    sub.instance_id = ctx.instance_id() + "/payment";
    PaymentRequest charge{order.order_id, order.customer, valid.amount, order.card, order.sim};
    auto paid = co_await ctx.call_sub_orchestration<PaymentResult>(kPayment, charge, sub);
    if (paid.status != "captured") {
        ctx.set_custom_status(Json{{"step", "releasing stock"}});
        auto released = co_await ctx.call_activity<Reservation>("release_stock", reservation, retry);
        result.status = "payment_declined";
        result.reason = paid.reason;
        result.host = released.host;
        co_return result;
    }
    result.payment_id = paid.payment_id;

    ctx.set_custom_status(Json{{"step", "shipping"}});
    ShipmentRequest ship{order.order_id, order.customer, reservation.reservation_id, order.sim};
    auto shipment = co_await ctx.call_activity<Shipment>("ship_order", ship, retry);
    result.status = "shipped";
    result.tracking = shipment.tracking;
    result.host = shipment.host;
    ctx.set_custom_status(Json{{"step", "done"}});
    co_return result;
}

void register_order(Registry& registry) {
    registry.add_orchestrator(kOrderPipeline, order_pipeline);
    registry.add_orchestrator(kPayment, payment);
    registry.add_activity("validate_order", validate_order, ActivitySettings{retrying_policy()});
    registry.add_activity("reserve_stock", reserve_stock, ActivitySettings{retrying_policy()});
    registry.add_activity("release_stock", release_stock, ActivitySettings{retrying_policy()});
    // The payment gateway is the dependency worth a circuit breaker: when it is down, calls
    // stop at once and the orchestrator's durable retry tries again later.
    registry.add_activity("authorize_payment", authorize_payment, ActivitySettings{guarded_policy()});
    registry.add_activity("capture_payment", capture_payment, ActivitySettings{guarded_policy()});
    registry.add_activity("ship_order", ship_order, ActivitySettings{retrying_policy()});
}

}  // namespace durable::orchestrations
