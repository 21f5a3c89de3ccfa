// The booking saga: forward steps, and compensations in reverse order on failure.
#include "orchestrations/booking.hpp"

#include <array>
#include <fmt/format.h>

#include "orchestrations/policies.hpp"

namespace durable::orchestrations {
namespace {

using namespace std::chrono_literals;

constexpr std::array<const char*, 3> kSteps = {"flight", "hotel", "car"};

Booking book(ActivityContext& ctx, const BookingRequest& req) {
    simulate(ctx, req.sim, "book/" + req.kind + "/" + req.trip_id);
    if (req.refuse) {
        throw Declined(fmt::format("no {} available for trip '{}' to {}", req.kind, req.trip_id, req.destination));
    }
    auto code = stable_hash(req.kind + "/" + req.trip_id, req.sim.seed) & 0xffffffULL;
    return Booking{req.kind, fmt::format("{}-{:06X}", req.kind, code), host_label()};
}

Booking cancel(ActivityContext& ctx, Booking b) {
    simulate(ctx, Simulation{}, "cancel/" + b.confirmation);
    b.host = host_label();
    return b;
}

}  // namespace

Task<TripResult> booking_saga(OrchestrationContext& ctx, TripRequest request) {
    TripResult result;
    result.trip_id = request.trip_id.empty() ? ctx.instance_id() : request.trip_id;
    std::exception_ptr failure;
    for (const char* step : kSteps) {
        ctx.set_custom_status(Json{{"stage", fmt::format("booking {}", step)}});
        BookingRequest req{result.trip_id, step, request.destination, request.fail_at == step, request.sim};
        try {
            std::string activity = fmt::format("book_{}", step);
            auto booking = co_await ctx.call_activity<Booking>(activity, req);
            result.host = booking.host;
            result.bookings.push_back(std::move(booking));
        } catch (const TaskFailed& e) {
            result.failed_step = step;
            result.error = e.what();
            failure = std::current_exception();
        }
        if (failure) break;
    }
    if (!failure) {
        result.status = "booked";
        ctx.set_custom_status(Json{{"stage", "booked"}});
        co_return result;
    }

    // Undo in reverse order. Compensations must not give up early: a durable retry with
    // backoff; if one still fails, the instance fails naming what is left booked.
    ActivityOptions retry{durable_retry(5, 200ms)};
    while (!result.bookings.empty()) {
        Booking b = result.bookings.back();
        ctx.set_custom_status(Json{{"stage", fmt::format("cancelling {}", b.kind)}});
        try {
            std::string activity = "cancel_" + b.kind;
            auto cancelled = co_await ctx.call_activity<Booking>(activity, b, retry);
            result.host = cancelled.host;
        } catch (const TaskFailed& e) {
            throw Error(fmt::format("trip '{}': compensation cancel_{} of {} failed ({}); it is still booked and "
                                    "needs a manual cancellation",
                                    result.trip_id, b.kind, b.confirmation, e.what()));
        }
        result.compensated.push_back(b.kind);
        result.bookings.pop_back();
    }
    result.status = "compensated";
    ctx.set_custom_status(Json{{"stage", "compensated"}, {"failed_step", result.failed_step}});
    co_return result;
}

void register_booking(Registry& registry) {
    // Bookings retry transient failures in-process; a refusal (Declined) is final at once and
    // starts the compensation.
    for (const char* step : kSteps) {
        registry.add_activity(fmt::format("book_{}", step), book, ActivitySettings{retrying_policy()});
        registry.add_activity(fmt::format("cancel_{}", step), cancel, ActivitySettings{retrying_policy()});
    }
    registry.add_orchestrator(kBookingSaga, booking_saga);
}

}  // namespace durable::orchestrations
