// The demo's mix of instances, the events it raises on them, and their expected outcomes.
#include "cli/demo_plan.hpp"

#include <fmt/format.h>

#include "orchestrations/orchestrations.hpp"

namespace durable::cli::demo {
namespace {

namespace o = durable::orchestrations;

Json order_input(int k, std::uint64_t seed, std::string& expected, std::string& label) {
    o::Order order;
    order.order_id = fmt::format("order-{:04}", k);
    order.customer = fmt::format("customer-{}", k % 17);
    order.items = {{"book", 1 + k % 3, 12.5}, {"pen", 2, 1.25}};
    order.sim = o::Simulation{5 + (k * 7) % 15, 0.05, seed + static_cast<std::uint64_t>(k)};
    if (k % 10 == 7) {
        order.card = "declined";
        expected = "payment_declined";
        label = "payment declined, stock released";
    } else if (k % 10 == 9) {
        order.items.push_back({"OUT-kettle", 1, 30.0});
        expected = "rejected";
        label = "rejected (out of stock)";
    } else {
        expected = "shipped";
        label = "shipped";
    }
    return order;
}

Json saga_input(int k, std::uint64_t seed, std::string& expected, std::string& label) {
    o::TripRequest trip;
    trip.trip_id = fmt::format("trip-{:04}", k);
    trip.customer = fmt::format("customer-{}", k % 13);
    trip.destination = k % 2 ? "Lisbon" : "Kyoto";
    trip.sim = o::Simulation{5 + (k * 5) % 10, 0.03, seed + 1000 + static_cast<std::uint64_t>(k)};
    if (k % 4 == 1) {
        trip.fail_at = "car";
        expected = "compensated";
        label = "compensated (car failed: hotel, flight undone)";
    } else if (k % 4 == 3) {
        trip.fail_at = "hotel";
        expected = "compensated";
        label = "compensated (hotel failed: flight undone)";
    } else {
        expected = "booked";
        label = "booked";
    }
    return trip;
}

Json approval_input(int k, std::chrono::milliseconds timeout, Action& action, std::string& expected,
                    std::string& label) {
    o::ApprovalRequest req;
    req.request_id = fmt::format("request-{:04}", k);
    req.requester = fmt::format("employee-{}", k % 11);
    req.amount = 100.0 + 37.0 * k;
    req.timeout_ms = timeout.count();
    // Requests the demo decides get a long second chance, so a decision the demo raises a
    // moment late (it looks every half second; a takeover takes a lease) still counts; only
    // the ones meant to expire expire quickly.
    req.escalation_timeout_ms = timeout.count() + 60'000;
    switch (k % 5) {
        case 0:
        case 1:
            action = Action::ApproveWhenWaiting;
            expected = label = "approved";
            break;
        case 2:
            action = Action::RejectWhenWaiting;
            expected = label = "rejected";
            break;
        case 3:
            action = Action::ApproveWhenEscalated;
            expected = "approved+escalated";
            label = "approved after escalation";
            break;
        default:
            action = Action::None;
            req.escalation_timeout_ms = timeout.count();
            expected = "expired";
            label = "expired (escalated, nobody answered)";
            break;
    }
    return req;
}

Json word_count_input(int k, std::uint64_t seed, std::string& expected, std::string& label) {
    o::WordCountRequest req;
    req.documents = 20 + (k * 13) % 41;
    req.words_per_document = 30;
    req.seed = seed + 2000 + static_cast<std::uint64_t>(k);
    req.sim = o::Simulation{2, 0.02, req.seed};
    expected = fmt::format("{} words", o::expected_word_count(req).total_words);
    label = "counted";
    return req;
}

Json monitor_input(int k, std::uint64_t seed, Action& action, std::string& expected, std::string& label) {
    o::MonitorState m;
    m.target = fmt::format("service-{}", k);
    m.interval_ms = 300;
    m.sim = o::Simulation{3, 0.0, seed + 3000 + static_cast<std::uint64_t>(k)};
    if (k % 2 == 0) {
        action = Action::StopAfterCycles;
        expected = "stopped";
        label = "stopped by the `stop` event";
        return m;
    }
    m.stop_after_healthy = 3;
    m.max_cycles = 25;
    m.unhealthy_rate = 0.3;
    // Which condition ends it is known in advance: replay the readings.
    int streak = 0;
    expected = "max_cycles";
    for (int cycle = 0; cycle < m.max_cycles; ++cycle) {
        streak = o::expected_healthy(o::HealthCheck{m.target, cycle, m.unhealthy_rate, m.sim}) ? streak + 1 : 0;
        if (streak >= m.stop_after_healthy) {
            expected = "healthy";
            break;
        }
    }
    label = expected == "healthy" ? "healthy 3 cycles in a row" : "hit its cycle limit";
    return m;
}

}  // namespace

Plan make_plan(int instances, std::uint64_t seed, std::chrono::milliseconds approval_timeout) {
    // A repeating pattern of 20 slots: 8 orders, 5 sagas, 3 approvals, 2 word counts, 2 monitors,
    // interleaved so every kind starts early.
    static constexpr const char* kPattern[20] = {"o", "s", "a", "o", "w", "s", "m", "o", "a", "s",
                                                 "o", "o", "s", "a", "o", "w", "s", "m", "o", "o"};
    Plan plan;
    std::map<std::string, int> seen;
    for (int i = 0; i < instances; ++i) {
        std::string kind = kPattern[i % 20];
        int k = seen[kind]++;
        Item item;
        if (kind == "o") {
            item.name = o::kOrderPipeline;
            item.id = fmt::format("{}order-{:04}", kIdPrefix, k);
            item.input = order_input(k, seed, item.expected, item.label);
        } else if (kind == "s") {
            item.name = o::kBookingSaga;
            item.id = fmt::format("{}trip-{:04}", kIdPrefix, k);
            item.input = saga_input(k, seed, item.expected, item.label);
        } else if (kind == "a") {
            item.name = o::kApproval;
            item.id = fmt::format("{}approval-{:04}", kIdPrefix, k);
            item.input = approval_input(k, approval_timeout, item.action, item.expected, item.label);
        } else if (kind == "w") {
            item.name = o::kWordCount;
            item.id = fmt::format("{}wordcount-{:04}", kIdPrefix, k);
            item.input = word_count_input(k, seed, item.expected, item.label);
        } else {
            item.name = o::kMonitor;
            item.id = fmt::format("{}monitor-{:04}", kIdPrefix, k);
            item.input = monitor_input(k, seed, item.action, item.expected, item.label);
        }
        plan.items.push_back(std::move(item));
    }
    return plan;
}

std::string outcome_of(const InstanceState& s) {
    if (s.status != Status::Completed) return std::string(to_string(s.status));
    const Json& out = s.output;
    if (!out.is_object()) return "Completed";
    if (s.name == o::kOrderPipeline || s.name == o::kBookingSaga || s.name == o::kPayment) {
        return out.value("status", "Completed");
    }
    if (s.name == o::kApproval) {
        std::string outcome = out.value("outcome", "Completed");
        if (outcome == "approved" && out.value("escalated", false)) outcome += "+escalated";
        return outcome;
    }
    if (s.name == o::kWordCount) return fmt::format("{} words", out.value("total_words", std::int64_t{0}));
    if (s.name == o::kMonitor) return out.value("reason", "Completed");
    return "Completed";
}

std::string judge(const Item& item, const InstanceState& s) {
    if (!is_terminal(s.status)) return fmt::format("{} is still {}", item.id, to_string(s.status));
    std::string got = outcome_of(s);
    // An approval meant to be approved at once may be approved after escalating instead, if
    // its host died while it waited and the takeover found the timer due: still approved.
    if (item.expected == "approved" && got == "approved+escalated") return {};
    if (got == item.expected) return {};
    std::string why;
    if (s.status == Status::Failed) {
        why = fmt::format(" ({}: {})", s.error.value("type", "Error"), s.error.value("message", ""));
    }
    return fmt::format("{} ({}) ended '{}'{}, expected '{}'", item.id, item.name, got, why, item.expected);
}

std::optional<Raise> next_raise(const Item& item, const InstanceState& s) {
    if (is_terminal(s.status) || !s.custom_status.is_object()) return std::nullopt;
    const Json& cs = s.custom_status;
    std::string stage = cs.value("stage", "");
    switch (item.action) {
        // Waiting, or already escalated if the demo looked too late: decide either way.
        case Action::ApproveWhenWaiting:
            if (stage == "waiting" || stage == "escalated") return Raise{"approved", Json{{"by", "demo-manager"}}};
            break;
        case Action::RejectWhenWaiting:
            if (stage == "waiting" || stage == "escalated") {
                return Raise{"rejected", Json{{"by", "demo-manager"}, {"comment", "over budget"}}};
            }
            break;
        case Action::ApproveWhenEscalated:
            if (stage == "escalated") return Raise{"approved", Json{{"by", "demo-director"}}};
            break;
        case Action::StopAfterCycles:
            if (cs.value("cycle", 0) >= 3) return Raise{"stop", Json{{"by", "demo"}}};
            break;
        case Action::None:
            break;
    }
    return std::nullopt;
}

}  // namespace durable::cli::demo
