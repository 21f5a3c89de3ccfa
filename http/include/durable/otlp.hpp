// durable/otlp.hpp — exports a host's spans with OTLP over HTTP/JSON (library durable_http).
//
//     auto otlp = durable::http::OtlpOptions::from_environment();   // OTEL_* variables
//     std::optional<durable::http::OtlpExporter> exporter;
//     if (otlp) { exporter.emplace(*otlp); host_options.span_sink = exporter->sink(); }
//
// The sink only queues: a span is copied into a bounded queue and the call returns; when the
// queue is full the span is dropped and counted (OtlpStats::dropped), so an episode never
// waits for the collector. One background thread sends batches (`POST {endpoint}/v1/traces`,
// Content-Type application/json) every `flush_interval` or as soon as `max_batch` spans wait,
// each through the resilience pipeline (retries with backoff and jitter, a timeout per
// attempt, a circuit breaker); a batch that still fails is dropped and counted.
//
// Environment (the OpenTelemetry SDK variables): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full
// URL) or OTEL_EXPORTER_OTLP_ENDPOINT (a base URL; /v1/traces is appended),
// OTEL_EXPORTER_OTLP_HEADERS / OTEL_EXPORTER_OTLP_TRACES_HEADERS (k=v,k2=v2),
// OTEL_SERVICE_NAME (default "durable"), OTEL_RESOURCE_ATTRIBUTES (k=v,k2=v2, values
// percent-decoded), OTEL_BSP_SCHEDULE_DELAY (ms between sends), OTEL_BSP_MAX_QUEUE_SIZE,
// OTEL_BSP_MAX_EXPORT_BATCH_SIZE.
//
// Thread safety: the sink may be called from any thread; the exporter's methods too.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "durable/resilience.hpp"
#include "durable/tracing.hpp"

namespace durable::http {

struct OtlpOptions {
    std::string traces_url;  // e.g. http://127.0.0.1:4318/v1/traces
    std::vector<std::pair<std::string, std::string>> headers;
    std::string service_name = "durable";
    std::vector<std::pair<std::string, std::string>> resource_attributes;
    std::size_t max_queue = 4096;                 // spans waiting; beyond: dropped and counted
    std::size_t max_batch = 512;                  // spans per request
    std::chrono::milliseconds flush_interval{1000};
    // Retries (3 attempts, 200 ms exponential backoff with jitter), 10 s per attempt, and a
    // breaker that stops trying for 5 s after 5 failures in a row.
    ResiliencePolicy policy = default_policy();

    static ResiliencePolicy default_policy();
    // The options the OTEL_* variables describe; nullopt when no endpoint is set. Throws
    // durable::InvalidInput for a malformed variable.
    static std::optional<OtlpOptions> from_environment();
};

struct OtlpStats {
    std::uint64_t queued = 0;    // spans accepted by the sink
    std::uint64_t exported = 0;  // spans the collector accepted
    std::uint64_t dropped = 0;   // spans dropped: queue full
    std::uint64_t failed = 0;    // spans dropped: their batch failed after retries
    std::uint64_t batches = 0;   // requests that succeeded
};

class OtlpExporter {
public:
    // Starts the sending thread. Throws durable::InvalidInput for a URL that is not http(s).
    explicit OtlpExporter(OtlpOptions options);
    // Sends what is queued (for up to one attempt timeout) and joins the thread.
    ~OtlpExporter();
    OtlpExporter(const OtlpExporter&) = delete;
    OtlpExporter& operator=(const OtlpExporter&) = delete;

    // The sink for HostOptions::span_sink. It stays safe to call after the exporter is gone
    // (spans are then dropped).
    SpanSink sink();
    // Blocks until every span queued before the call was sent or given up, or `timeout`.
    // True if everything was handled in time.
    bool flush(std::chrono::milliseconds timeout);
    OtlpStats stats() const;
    // The OTLP/JSON request body for `spans` (ExportTraceServiceRequest).
    static std::string encode(const OtlpOptions& options, const std::vector<Span>& spans);

    struct Core;

private:
    std::shared_ptr<Core> core_;
};

}  // namespace durable::http
