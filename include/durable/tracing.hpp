// durable/tracing.hpp — trace spans of the work a host does.
//
// One correlation id follows a unit of work from the client call that scheduled it through
// every episode, activity and sub-orchestration it causes (ScheduleOptions::correlation_id,
// default: the instance id). A host hands each finished span to HostOptions::span_sink, from
// which it can go to any tracing system. Sinks are called from the host's worker threads and
// must be thread-safe and quick.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace durable {

struct Span {
    std::string correlation_id;  // the trace this span belongs to
    std::string name;            // "episode", "activity:<name>"
    std::string instance_id;
    std::string host_id;
    std::int64_t start_ms = 0;   // wall clock
    std::int64_t duration_us = 0;
    bool ok = true;
    std::string detail;          // error message when !ok
};

using SpanSink = std::function<void(const Span&)>;

}  // namespace durable
