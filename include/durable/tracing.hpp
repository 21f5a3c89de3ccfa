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
//       activity:<name> attempt   one per in-process attempt (durable.attempt = 1, 2, ...), made
//                                 when there were several attempts or the one attempt failed
//       activity:<name> retry     the backoff before attempt 2, 3, ...
//
// Names and attributes follow the Durable Task SDKs' conventions (durabletask.type,
// durabletask.task.name, durabletask.task.instance_id, durabletask.task.task_id), as the
// OpenTelemetry semantic conventions have none for workflows; failures carry `error.type`
// and an ERROR status, as the semantic conventions say.
//
// Sampling (head sampling, as the OpenTelemetry SDKs do it): whether an instance's spans are
// recorded is decided once, when the instance is scheduled, by the scheduling process's
// Sampler (HostOptions::trace_sampler for Host::client(), else Sampler::from_environment()).
// The decision is persisted with the instance (the sampled flag of its traceparent, or a
// flag of its start event when it roots its own trace) and carried to its sub-orchestrations
// (their traceparent) and its activity task rows, so every host, whatever its own sampler,
// agrees: an unsampled instance makes no span anywhere, at no cost beyond one flag test.
//
// A host hands each finished span to HostOptions::span_sink, from which it can go to any
// tracing system (durable_http's OtlpExporter sends OTLP/HTTP). Sinks are called from the
// host's worker threads and must be thread-safe and quick (queue, do not send); the span is
// handed over (an rvalue), so a queueing sink moves it instead of copying it.
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

// Which traces are recorded: the OpenTelemetry SDK samplers (OTEL_TRACES_SAMPLER).
//   always_on / always_off       every trace / none
//   traceidratio                 a fraction (`ratio`) of traces, chosen by the trace id, so
//                                every process with the same ratio chooses the same traces
//   parentbased_<root>           a caller's traceparent decides (its sampled flag); <root>
//                                decides for instances without one. The default is
//                                parentbased_always_on, as in the SDKs.
struct Sampler {
    enum class Root { AlwaysOn, AlwaysOff, TraceIdRatio };
    Root root = Root::AlwaysOn;
    double ratio = 1.0;        // for TraceIdRatio: 0 samples nothing, 1 everything
    bool parent_based = true;  // honour the caller's sampled flag when there is a caller

    static Sampler always_on() { return {Root::AlwaysOn, 1.0, false}; }
    static Sampler always_off() { return {Root::AlwaysOff, 0.0, false}; }
    static Sampler trace_id_ratio(double ratio, bool parent_based = false) {
        return {Root::TraceIdRatio, ratio, parent_based};
    }
    // The sampler `name` and `arg` (the values of OTEL_TRACES_SAMPLER and _ARG) describe;
    // nullopt for an unknown name or a ratio that is not a number in [0, 1].
    static std::optional<Sampler> parse(std::string_view name, std::string_view arg);
    // From OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG; unset: the default. An invalid value
    // is ignored with a warning on spdlog's default logger (the SDKs do the same).
    static Sampler from_environment();
    // Whether the trace `trace_id` (32 hex digits) is recorded; `parent_sampled` is the
    // caller's flag, nullopt when there is no caller.
    bool should_sample(std::string_view trace_id, std::optional<bool> parent_sampled) const;
    // "parentbased_traceidratio{0.1}" and the like, for logs and benchmark lines.
    std::string describe() const;
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
    // Keys are static strings (the semantic-convention names, as literals): a span is made
    // for every episode and activity, and its keys cost no allocation.
    std::vector<std::pair<std::string_view, AttributeValue>> attributes;
};

// Takes each finished span; it may keep it (move from it). A callable taking `const Span&`
// fits as well.
using SpanSink = std::function<void(Span&&)>;

}  // namespace durable
