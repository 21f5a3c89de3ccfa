// runtime/tracing_ids.hpp — how an instance's spans find their trace and parent on any host.
#pragma once

#include <string>

namespace durable::detail {

struct InstanceTrace {
    std::string trace_id;               // the caller's trace, or one derived from the instance id
    std::string parent_span_id;         // the caller's span (empty: the orchestration span is a root)
    std::string orchestration_span_id;  // derived from instance and execution ids: the same on every host
};

// From the instance's persisted traceparent (may be empty or invalid: a trace of its own).
InstanceTrace instance_trace(const std::string& trace_parent, const std::string& instance_id,
                             const std::string& execution_id);
// The traceparent for what the execution starts (sub-orchestrations): its orchestration span.
std::string child_traceparent(const std::string& trace_parent, const std::string& instance_id,
                              const std::string& execution_id);

}  // namespace durable::detail
