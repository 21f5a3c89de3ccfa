// Human approval: wait for `approved` / `rejected`, escalate on a durable timeout, expire.
#include "orchestrations/approval.hpp"

#include <fmt/format.h>

#include "orchestrations/policies.hpp"

namespace durable::orchestrations {
namespace {

using namespace std::chrono_literals;

struct Notification {
    std::string request_id, to, message;
    Simulation sim;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Notification, request_id, to, message, sim)

struct Notified {
    std::string to;
    std::string host;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Notified, to, host)

Notified notify_approver(ActivityContext& ctx, const Notification& n) {
    simulate(ctx, n.sim, "notify/" + n.request_id + "/" + n.to);
    return Notified{n.to, host_label()};
}

ApprovalResult record_decision(ActivityContext& ctx, ApprovalResult r) {
    simulate(ctx, Simulation{}, "record/" + r.request_id);
    r.host = host_label();
    return r;
}

void read_decision(const Json& payload, ApprovalResult& r) {
    if (payload.is_object()) {
        if (auto by = payload.find("by"); by != payload.end() && by->is_string()) r.decided_by = by->get<std::string>();
        if (auto c = payload.find("comment"); c != payload.end() && c->is_string()) r.comment = c->get<std::string>();
    } else if (payload.is_string()) {
        r.decided_by = payload.get<std::string>();
    }
}

}  // namespace

Task<ApprovalResult> approval(OrchestrationContext& ctx, ApprovalRequest request) {
    ActivityOptions retry{durable_retry(3, 200ms)};
    ApprovalResult result;
    result.request_id = request.request_id.empty() ? ctx.instance_id() : request.request_id;

    Notification ask{result.request_id, request.approver,
                     fmt::format("{} asks for approval of {:.2f}", request.requester, request.amount), request.sim};
    co_await ctx.call_activity<Notified>("notify_approver", ask, retry);
    ctx.set_custom_status(Json{{"stage", "waiting"}, {"approver", request.approver}});

    // The two waits are made once and reused after an escalation, so an event is never
    // handed to a wait nobody listens to any more.
    auto approved = ctx.wait_for_external_event<Json>("approved");
    auto rejected = ctx.wait_for_external_event<Json>("rejected");
    auto deadline = ctx.create_timer(std::chrono::milliseconds(request.timeout_ms));
    std::size_t first = co_await when_any(approved, rejected, deadline);

    if (first == 2) {
        result.escalated = true;
        ctx.log_info("approval {} timed out after {} ms; escalating to {}", result.request_id, request.timeout_ms,
                     request.escalate_to);
        Notification escalation{result.request_id, request.escalate_to,
                                fmt::format("escalated: {} waited {} ms for {}", request.requester,
                                            request.timeout_ms, request.approver),
                                request.sim};
        co_await ctx.call_activity<Notified>("notify_approver", escalation, retry);
        ctx.set_custom_status(Json{{"stage", "escalated"}, {"approver", request.escalate_to}});
        auto last_call = ctx.create_timer(std::chrono::milliseconds(request.escalation_timeout_ms));
        first = co_await when_any(approved, rejected, last_call);
    }

    if (first == 0) {
        result.outcome = "approved";
        Json payload = co_await std::move(approved);
        read_decision(payload, result);
    } else if (first == 1) {
        result.outcome = "rejected";
        Json payload = co_await std::move(rejected);
        read_decision(payload, result);
    } else {
        result.outcome = "expired";
        result.comment = "no decision before the escalation timed out";
    }
    ctx.set_custom_status(Json{{"stage", "decided"}, {"outcome", result.outcome}});
    co_return co_await ctx.call_activity<ApprovalResult>("record_decision", result, retry);
}

void register_approval(Registry& registry) {
    registry.add_orchestrator(kApproval, approval);
    registry.add_activity("notify_approver", notify_approver, ActivitySettings{retrying_policy()});
    registry.add_activity("record_decision", record_decision, ActivitySettings{retrying_policy()});
}

}  // namespace durable::orchestrations
