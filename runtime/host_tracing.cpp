// The spans a host makes of its episodes and activities (the tree is in durable/tracing.hpp),
// and the per-activity failure counters that come from the same places.
#include <fmt/format.h>

#include "runtime/host_impl.hpp"
#include "runtime/tracing_ids.hpp"

namespace durable {
namespace {

std::int64_t wall_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

void Host::Impl::trace_episode(const detail::ExecutionInfo& info, std::chrono::nanoseconds took, Status status,
                               bool ended, const std::string& error) {
    auto t = detail::instance_trace(info.trace_parent, info.instance_id, info.execution_id);
    std::int64_t end = wall_ns();
    bool failed = status == Status::Failed;
    auto base = [&](Span& s) {
        s.correlation_id = info.correlation_id;
        s.instance_id = info.instance_id;
        s.host_id = id;
        s.trace_id = t.trace_id;
        s.ok = !failed;
        s.detail = failed ? error : std::string();
        s.attributes.reserve(8);
        s.attributes.emplace_back("durabletask.type", std::string("orchestration"));
        s.attributes.emplace_back("durabletask.task.name", info.name);
        s.attributes.emplace_back("durabletask.task.instance_id", info.instance_id);
        s.attributes.emplace_back("durabletask.task.execution_id", info.execution_id);
        if (failed) s.attributes.emplace_back("error.type", std::string("OrchestrationFailed"));
    };
    Span ep;
    base(ep);
    ep.name = "episode:" + info.name;
    ep.span_id = TraceContext::new_span_id();
    ep.parent_span_id = t.orchestration_span_id;
    ep.kind = SpanKind::Internal;
    ep.end_unix_ns = end;
    ep.start_unix_ns = end - took.count();
    ep.start_ms = ep.start_unix_ns / 1'000'000;
    ep.duration_us = took.count() / 1000;
    ep.attributes.emplace_back("durable.host.id", id);
    options.span_sink(std::move(ep));
    if (!ended) return;
    Span orch;
    base(orch);
    orch.name = "orchestration:" + info.name;
    orch.span_id = t.orchestration_span_id;
    orch.parent_span_id = t.parent_span_id;
    orch.kind = SpanKind::Server;
    orch.end_unix_ns = end;
    orch.start_unix_ns = std::min(end, info.started_at_ms * 1'000'000);
    orch.start_ms = orch.start_unix_ns / 1'000'000;
    orch.duration_us = (orch.end_unix_ns - orch.start_unix_ns) / 1000;
    orch.attributes.emplace_back("durabletask.runtime_status", std::string(to_string(status)));
    options.span_sink(std::move(orch));
}

void Host::Impl::trace_activity(const ActivityWork& work, std::chrono::nanoseconds took,
                                const std::vector<AttemptRecord>& attempts, std::exception_ptr error) {
    auto t = detail::instance_trace(work.trace_parent, work.instance_id, work.execution_id);
    std::int64_t end = wall_ns();
    auto base = [&](Span& s, bool ok, const std::string& type, const std::string& message) {
        s.correlation_id = work.correlation_id;
        s.instance_id = work.instance_id;
        s.host_id = id;
        s.trace_id = t.trace_id;
        s.ok = ok;
        s.detail = message;
        s.attributes.reserve(8);
        s.attributes.emplace_back("durabletask.type", std::string("activity"));
        s.attributes.emplace_back("durabletask.task.name", work.name);
        s.attributes.emplace_back("durabletask.task.instance_id", work.instance_id);
        s.attributes.emplace_back("durabletask.task.task_id", work.task_id);
        if (!ok) s.attributes.emplace_back("error.type", type);
    };
    Span act;
    base(act, !error, error ? detail::exception_type_name(error) : std::string(),
         error ? detail::exception_message(error) : std::string());
    act.name = "activity:" + work.name;
    act.span_id = TraceContext::new_span_id();
    act.parent_span_id = t.orchestration_span_id;
    act.kind = SpanKind::Server;
    act.end_unix_ns = end;
    act.start_unix_ns = end - took.count();
    act.start_ms = act.start_unix_ns / 1'000'000;
    act.duration_us = took.count() / 1000;
    act.attributes.emplace_back("durable.activity.attempts", static_cast<std::int64_t>(attempts.size()));
    act.attributes.emplace_back("durable.host.id", id);
    // Attempt times are steady-clock offsets from the activity's start.
    auto steady_end = attempts.empty() ? std::chrono::steady_clock::now() : attempts.back().end;
    auto at = [&](std::chrono::steady_clock::time_point p) {
        return end - std::chrono::duration_cast<std::chrono::nanoseconds>(steady_end - p).count();
    };
    // One attempt that succeeded says nothing the activity span does not: attempt and retry
    // spans are made when there was more than one attempt, or a failure.
    bool detailed = attempts.size() > 1 || (attempts.size() == 1 && !attempts.front().error_type.empty());
    for (std::size_t i = 0; detailed && i < attempts.size(); ++i) {
        const auto& a = attempts[i];
        if (i > 0) {
            Span retry;
            base(retry, true, {}, {});
            retry.name = "activity:" + work.name + " retry";
            retry.span_id = TraceContext::new_span_id();
            retry.parent_span_id = act.span_id;
            retry.start_unix_ns = at(attempts[i - 1].end);
            retry.end_unix_ns = at(a.start);
            retry.start_ms = retry.start_unix_ns / 1'000'000;
            retry.duration_us = (retry.end_unix_ns - retry.start_unix_ns) / 1000;
            retry.attributes.emplace_back("durable.attempt", static_cast<std::int64_t>(i + 1));
            retry.attributes.emplace_back("durable.retry.after_error", attempts[i - 1].error_type);
            options.span_sink(std::move(retry));
        }
        Span as;
        base(as, a.error_type.empty(), a.error_type, a.error_message);
        as.name = "activity:" + work.name + " attempt";
        as.span_id = TraceContext::new_span_id();
        as.parent_span_id = act.span_id;
        as.start_unix_ns = at(a.start);
        as.end_unix_ns = at(a.end);
        as.start_ms = as.start_unix_ns / 1'000'000;
        as.duration_us = (as.end_unix_ns - as.start_unix_ns) / 1000;
        as.attributes.emplace_back("durable.attempt", static_cast<std::int64_t>(i + 1));
        options.span_sink(std::move(as));
    }
    options.span_sink(std::move(act));
}

void Host::Impl::count_attempt_failure(const std::string& activity, const std::string& error_type) {
    metrics
        .counter("durable_activity_attempt_failures_total", "Activity attempts that failed, by activity and error type",
                 {{"activity", activity}, {"error_type", error_type}})
        .inc();
}

void Host::Impl::count_activity_failure(const std::string& activity, const std::string& error_type) {
    metrics
        .counter("durable_activity_failures_by_type_total",
                 "Activity executions that failed after their in-process retries, by activity and error type",
                 {{"activity", activity}, {"error_type", error_type}})
        .inc();
}

}  // namespace durable
