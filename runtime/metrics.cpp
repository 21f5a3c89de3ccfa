// Metrics registry and its Prometheus text rendering.
#include "durable/metrics.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace durable {

void Histogram::observe(double seconds) {
    std::size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<std::int64_t>(seconds * 1e9), std::memory_order_relaxed);
}

double Histogram::quantile(double q) const {
    std::int64_t total = count();
    if (total == 0) return 0;
    std::int64_t want = static_cast<std::int64_t>(q * static_cast<double>(total));
    std::int64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
        seen += bucket(i);
        if (seen > want || seen == total) return i < kBounds.size() ? kBounds[i] : kBounds.back();
    }
    return kBounds.back();
}

Metrics::Family& Metrics::family(const std::string& name, const std::string& help, const char* type) {
    auto& f = families_[name];
    if (f.type.empty()) {
        f.type = type;
        f.help = help;
    } else if (f.type != type) {
        throw std::logic_error(fmt::format("metric {} is a {}, not a {}", name, f.type, type));
    }
    return f;
}

Counter& Metrics::counter(const std::string& name, const std::string& help, const std::string& labels) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, help, "counter").counters[labels];
    if (!slot) slot = std::make_unique<Counter>();
    return *slot;
}

Gauge& Metrics::gauge(const std::string& name, const std::string& help, const std::string& labels) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, help, "gauge").gauges[labels];
    if (!slot) slot = std::make_unique<Gauge>();
    return *slot;
}

Histogram& Metrics::histogram(const std::string& name, const std::string& help, const std::string& labels) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, help, "histogram").histograms[labels];
    if (!slot) slot = std::make_unique<Histogram>();
    return *slot;
}

std::string Metrics::prometheus_text() const {
    std::lock_guard lock(mu_);
    std::string out;
    auto with = [](const std::string& labels, const std::string& extra) {
        if (labels.empty() && extra.empty()) return std::string();
        if (labels.empty()) return "{" + extra + "}";
        if (extra.empty()) return "{" + labels + "}";
        return "{" + labels + "," + extra + "}";
    };
    for (const auto& [name, f] : families_) {
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, f.type);
        for (const auto& [labels, c] : f.counters) out += fmt::format("{}{} {}\n", name, with(labels, ""), c->value());
        for (const auto& [labels, g] : f.gauges) out += fmt::format("{}{} {}\n", name, with(labels, ""), g->value());
        for (const auto& [labels, h] : f.histograms) {
            std::int64_t cumulative = 0;
            for (std::size_t i = 0; i <= Histogram::kBounds.size(); ++i) {
                cumulative += h->bucket(i);
                std::string le = i < Histogram::kBounds.size() ? fmt::format("{}", Histogram::kBounds[i]) : "+Inf";
                out += fmt::format("{}_bucket{} {}\n", name, with(labels, "le=\"" + le + "\""), cumulative);
            }
            out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, with(labels, ""), h->sum(), name,
                               with(labels, ""), h->count());
        }
    }
    return out;
}

}  // namespace durable
