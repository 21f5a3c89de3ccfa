// orchestrations/approval.hpp — human interaction: an approval with a durable timeout.
//
// `approval` notifies the approver, then waits for an external event `approved` or
// `rejected` (raised with `durable raise ID approved --data '{"by":"alice"}'` or
// Client::raise_event). If neither arrives within `timeout_ms`, a durable timer fires and the
// request is escalated to `escalate_to`; if no decision arrives within
// `escalation_timeout_ms` after that, the request expires. The timers are durable: the wait
// survives restarts and takeovers. The event payload may be an object with "by" and
// "comment", a string (who decided) or nothing.
//
// Custom status while waiting: {"stage": "waiting", "approver": ...}, then
// {"stage": "escalated", "approver": <escalate_to>} after the escalation.
#pragma once

#include <cstdint>
#include <string>

#include <durable/durable.hpp>

#include "orchestrations/simulation.hpp"

namespace durable::orchestrations {

inline constexpr const char* kApproval = "approval";

struct ApprovalRequest {
    std::string request_id;
    std::string requester;
    double amount = 0.0;
    std::string approver = "manager";
    std::string escalate_to = "director";
    std::int64_t timeout_ms = 24LL * 3600 * 1000;
    std::int64_t escalation_timeout_ms = 24LL * 3600 * 1000;
    Simulation sim;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ApprovalRequest, request_id, requester, amount, approver, escalate_to,
                                                timeout_ms, escalation_timeout_ms, sim)

struct ApprovalResult {
    std::string request_id;
    std::string outcome;  // "approved", "rejected" or "expired"
    bool escalated = false;
    std::string decided_by;
    std::string comment;
    std::string host;     // the host that recorded the decision
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ApprovalResult, request_id, outcome, escalated, decided_by, comment,
                                                host)

Task<ApprovalResult> approval(OrchestrationContext& ctx, ApprovalRequest request);

// Registers approval and its activities (notify_approver, record_decision).
void register_approval(Registry& registry);

}  // namespace durable::orchestrations
