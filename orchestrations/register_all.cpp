// Registration of every example orchestration, and example inputs.
#include "orchestrations/orchestrations.hpp"

namespace durable::orchestrations {

void register_all(Registry& registry) {
    register_order(registry);
    register_word_count(registry);
    register_approval(registry);
    register_booking(registry);
    register_monitor(registry);
}

std::shared_ptr<Registry> make_registry() {
    auto r = std::make_shared<Registry>();
    register_all(*r);
    return r;
}

Json example_input(const std::string& name) {
    if (name == kOrderPipeline) {
        Order o;
        o.order_id = "order-1";
        o.customer = "ada";
        o.items = {{"book", 2, 12.5}, {"pen", 3, 1.2}};
        return o;
    }
    if (name == kPayment) return PaymentRequest{"order-1", "ada", 28.6, "4242-4242", {}};
    if (name == kWordCount) return WordCountRequest{};
    if (name == kApproval) {
        ApprovalRequest a;
        a.request_id = "request-1";
        a.requester = "ada";
        a.amount = 1200;
        a.timeout_ms = 60'000;
        a.escalation_timeout_ms = 60'000;
        return a;
    }
    if (name == kBookingSaga) {
        TripRequest t;
        t.trip_id = "trip-1";
        t.customer = "ada";
        return t;
    }
    if (name == kMonitor) {
        MonitorState m;
        m.target = "api";
        m.stop_after_healthy = 3;
        m.max_cycles = 20;
        return m;
    }
    return Json();
}

}  // namespace durable::orchestrations
