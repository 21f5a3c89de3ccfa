// durable/tracing.hpp — trace spans of the work a host does, in the OpenTelemetry model.
//
// A trace starts at the client call that schedules an instance: pass the caller's W3C
// `traceparent` in ScheduleOptions::traceparent and the instance's spans join the caller's
// trace (otherwise the instance starts its own). The trace context is persisted with the
// instance (its row and its start event), so whichever host runs it, now or after a takeover,
// parents its spans the same way:
//
//   orchestration:<name>   (SERVER) one per execution, from its start to its end; its span id
//                          is derived from the instance and execution ids, so every host
//                          computes the same one. Parent: the caller's span, or for a
//                          sub-orchestration the parent's orchestration span.
//     episode:<name>       (INTERNAL) one per episode, on the host that ran it
//     activity:<name>      (SERVER) one per execution of an activity (a durable retry is a
//                          new execution), with
//       activity:<name> attempt   one per in-process attempt (durable.attempt = 1, 2, ...)
//       activity:<name> retry     the backoff before attempt 2, 3, ...
//
// Names and attributes follow the Durable Task SDKs' conventions (durabletask.type,
// durabletask.task.name, durabletask.task.instance_id, durabletask.task.task_id), as the
// OpenTelemetry semantic conventions have none for workflows; failures carry `error.type`
// and an ERROR status, as the semantic conventions say.
//
// A host hands each finished span to HostOptions::span_sink, from which it can go to any
// tracing system (durable_http's OtlpExporter sends OTLP/HTTP). Sinks are called from the
// host's worker threads and must be thread-safe and quick (queue, do not send).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace durable {

// A W3C trace context (https://www.w3.org/TR/trace-context/): ids as lowercase hex.
struct TraceContext {
    std::string trace_id;  // 32 hex digits, not all zero
    std::string span_id;   // 16 hex digits, not all zero: the parent of what follows
    bool sampled = true;

    // Parses a `traceparent` header value (version 00); nullopt if it is not valid.
    static std::optional<TraceContext> parse(std::string_view traceparent);
    // "00-<trace id>-<span id>-01" (or -00 when not sampled).
    std::string traceparent() const;
    // A new random trace id / span id.
    static std::string new_trace_id();
    static std::string new_span_id();
};

enum class SpanKind { Internal, Server, Client, Producer, Consumer };

using AttributeValue = std::variant<std::string, std::int64_t, double, bool>;

struct Span {
    std::string correlation_id;  // the correlation id of the work (ScheduleOptions::correlation_id)
    std::string name;            // see the file comment
    std::string instance_id;
    std::string host_id;
    std::int64_t start_ms = 0;   // wall clock
    std::int64_t duration_us = 0;
    bool ok = true;
    std::string detail;          // error message when !ok

    std::string trace_id;        // 32 hex digits
    std::string span_id;         // 16 hex digits
    std::string parent_span_id;  // empty for a root span
    SpanKind kind = SpanKind::Internal;
    std::int64_t start_unix_ns = 0, end_unix_ns = 0;
    std::vector<std::pair<std::string, AttributeValue>> attributes;
};

using SpanSink = std::function<void(const Span&)>;

}  // namespace durable
