// runtime/tracing_ids.hpp — how an instance's spans find their trace and parent on any host.
#pragma once

#include <string>

namespace durable::detail {

struct InstanceTrace {
    std::string trace_id;               // the caller's trace, or one derived from the instance id
    std::string parent_span_id;         // the caller's span (empty: the orchestration span is a root)
    std::string orchestration_span_id;  // derived from instance and execution ids: the same on every host
};

// Whether an execution's spans are recorded: the decision made when the instance was scheduled,
// as its start event carries it (the traceparent's sampled flag, and `sampled`: false for an
// unsampled instance without a caller trace).
bool execution_sampled(const std::string& trace_parent, bool start_flag);

// From the instance's persisted traceparent (may be empty or invalid: a trace of its own).
InstanceTrace instance_trace(const std::string& trace_parent, const std::string& instance_id,
                             const std::string& execution_id);
// The traceparent for what the execution starts (sub-orchestrations, activity task rows): its
// orchestration span, with the execution's sampling decision as the sampled flag.
std::string child_traceparent(const std::string& trace_parent, const std::string& instance_id,
                              const std::string& execution_id, bool sampled);

}  // namespace durable::detail
