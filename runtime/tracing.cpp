// W3C trace context parsing and id generation, and the spans a host makes of its episodes and
// activities (see durable/tracing.hpp for the span tree).
#include "durable/tracing.hpp"

#include <fmt/format.h>

#include <random>

#include "runtime/tracing_ids.hpp"

namespace durable {
namespace {

bool is_hex(std::string_view s) {
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

bool all_zero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

std::uint64_t random64() {
    thread_local std::mt19937_64 rng{std::random_device{}() ^
                                     (static_cast<std::uint64_t>(std::random_device{}()) << 32)};
    std::uint64_t v = 0;
    while (v == 0) v = rng();
    return v;
}

std::uint64_t fnv1a(std::string_view a, std::uint64_t h = 14695981039346656037ULL) {
    for (unsigned char c : a) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    return h;
}

}  // namespace

std::optional<TraceContext> TraceContext::parse(std::string_view tp) {
    // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55
    if (tp.size() < 55) return std::nullopt;
    if (tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return std::nullopt;
    auto version = tp.substr(0, 2), trace = tp.substr(3, 32), span = tp.substr(36, 16), flags = tp.substr(53, 2);
    if (!is_hex(version) || version == "ff" || !is_hex(trace) || !is_hex(span) || !is_hex(flags)) return std::nullopt;
    if (version == "00" && tp.size() != 55) return std::nullopt;
    if (all_zero(trace) || all_zero(span)) return std::nullopt;
    TraceContext c;
    c.trace_id = std::string(trace);
    c.span_id = std::string(span);
    c.sampled = (std::stoi(std::string(flags), nullptr, 16) & 1) != 0;
    return c;
}

std::string TraceContext::traceparent() const {
    return fmt::format("00-{}-{}-{}", trace_id, span_id, sampled ? "01" : "00");
}

std::string TraceContext::new_trace_id() { return fmt::format("{:016x}{:016x}", random64(), random64()); }

std::string TraceContext::new_span_id() { return fmt::format("{:016x}", random64()); }

namespace detail {

InstanceTrace instance_trace(const std::string& trace_parent, const std::string& instance_id,
                             const std::string& execution_id) {
    InstanceTrace t;
    if (auto c = TraceContext::parse(trace_parent)) {
        t.trace_id = c->trace_id;
        t.parent_span_id = c->span_id;
    } else {
        // No caller trace: the instance roots its own, the same on every host.
        std::uint64_t a = fnv1a(instance_id), b = fnv1a(instance_id, a ^ 0x9e3779b97f4a7c15ULL);
        if (a == 0 && b == 0) a = 1;
        t.trace_id = fmt::format("{:016x}{:016x}", a, b);
    }
    std::uint64_t s = fnv1a(execution_id, fnv1a("/", fnv1a(instance_id)));
    if (s == 0) s = 1;
    t.orchestration_span_id = fmt::format("{:016x}", s);
    return t;
}

std::string child_traceparent(const std::string& trace_parent, const std::string& instance_id,
                              const std::string& execution_id, bool sampled) {
    auto t = instance_trace(trace_parent, instance_id, execution_id);
    return TraceContext{t.trace_id, t.orchestration_span_id, sampled}.traceparent();
}

bool execution_sampled(const std::string& trace_parent, bool start_flag) {
    if (!start_flag) return false;
    if (trace_parent.empty()) return true;
    auto c = TraceContext::parse(trace_parent);
    return !c || c->sampled;
}

}  // namespace detail
}  // namespace durable
