// Head sampling: the OpenTelemetry SDK samplers (see durable/tracing.hpp), parsed from the
// standard variables and decided from the trace id alone, so that processes agree.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "durable/tracing.hpp"

namespace durable {
namespace {

// The trace id's low 64 bits (its last 16 hex digits), as the SDKs' ratio samplers read it.
std::uint64_t low_bits(std::string_view trace_id) {
    if (trace_id.size() < 16) return 0;
    std::uint64_t v = 0;
    for (char c : trace_id.substr(trace_id.size() - 16)) {
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 0;
        v = (v << 4) | static_cast<std::uint64_t>(d);
    }
    return v;
}

}  // namespace

std::optional<Sampler> Sampler::parse(std::string_view name, std::string_view arg) {
    auto ratio = [&]() -> std::optional<double> {
        if (arg.empty()) return 1.0;  // the SDKs' default for a ratio sampler without an argument
        std::string text(arg);
        char* end = nullptr;
        double r = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0' || !std::isfinite(r) || r < 0.0 || r > 1.0) return std::nullopt;
        return r;
    };
    if (name == "always_on") return always_on();
    if (name == "always_off") return always_off();
    if (name == "parentbased_always_on") return Sampler{};
    if (name == "parentbased_always_off") return Sampler{Root::AlwaysOff, 0.0, true};
    if (name == "traceidratio" || name == "parentbased_traceidratio") {
        auto r = ratio();
        if (!r) return std::nullopt;
        return trace_id_ratio(*r, name == "parentbased_traceidratio");
    }
    return std::nullopt;
}

Sampler Sampler::from_environment() {
    const char* name = std::getenv("OTEL_TRACES_SAMPLER");
    if (!name || !*name) return Sampler{};
    const char* arg = std::getenv("OTEL_TRACES_SAMPLER_ARG");
    if (auto s = parse(name, arg ? arg : "")) return *s;
    spdlog::warn("OTEL_TRACES_SAMPLER='{}' OTEL_TRACES_SAMPLER_ARG='{}' is not a sampler durable knows (always_on, "
                 "always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio "
                 "with a ratio in [0, 1]); using parentbased_always_on",
                 name, arg ? arg : "");
    return Sampler{};
}

bool Sampler::should_sample(std::string_view trace_id, std::optional<bool> parent_sampled) const {
    if (parent_based && parent_sampled) return *parent_sampled;
    switch (root) {
        case Root::AlwaysOn: return true;
        case Root::AlwaysOff: return false;
        case Root::TraceIdRatio: {
            if (ratio >= 1.0) return true;
            if (ratio <= 0.0) return false;
            // As the Go and Java SDKs: the low 63 bits against ratio * 2^63.
            auto bound = static_cast<std::uint64_t>(ratio * 9223372036854775808.0);
            return (low_bits(trace_id) >> 1) < bound;
        }
    }
    return true;
}

std::string Sampler::describe() const {
    std::string r = root == Root::AlwaysOn    ? "always_on"
                    : root == Root::AlwaysOff ? "always_off"
                                              : fmt::format("traceidratio{{{}}}", ratio);
    return parent_based ? "parentbased_" + r : r;
}

}  // namespace durable
