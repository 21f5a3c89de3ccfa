// Metrics registry and its Prometheus text rendering.
#include "durable/metrics.hpp"

#include <fmt/format.h>

#include <cmath>
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

std::string prometheus_escape(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '"': out += "\\\""; break;
            case '\n': out += "\\n"; break;
            default: out += c;
        }
    }
    return out;
}

namespace {

bool valid_name(std::string_view name, bool metric) {
    if (name.empty()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':') ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

// HELP text escapes only backslash and line feed.
std::string escape_help(std::string_view help) {
    std::string out;
    for (char c : help) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string format_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    return fmt::format("{}", v);
}

}  // namespace

void PrometheusWriter::family(std::string_view name, std::string_view help, std::string_view type) {
    if (!valid_name(name, true)) throw std::invalid_argument(fmt::format("'{}' is not a valid metric name", name));
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help), name, type);
}

void PrometheusWriter::line(std::string_view name, const Labels& labels, const std::string& value) {
    out_ += name;
    if (!labels.empty()) {
        out_ += '{';
        bool first = true;
        for (const auto& [k, v] : labels) {
            if (!valid_name(k, false)) throw std::invalid_argument(fmt::format("'{}' is not a valid label name", k));
            if (!first) out_ += ',';
            first = false;
            out_ += k;
            out_ += "=\"";
            out_ += prometheus_escape(v);
            out_ += '"';
        }
        out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
}

void PrometheusWriter::sample(std::string_view name, const Labels& labels, double value) {
    line(name, labels, format_value(value));
}

void PrometheusWriter::sample(std::string_view name, const Labels& labels, std::int64_t value) {
    line(name, labels, std::to_string(value));
}

void PrometheusWriter::counter(std::string_view name, std::string_view help, std::int64_t value) {
    family(name, help, "counter");
    sample(name, {}, value);
}

void PrometheusWriter::gauge(std::string_view name, std::string_view help, double value) {
    family(name, help, "gauge");
    sample(name, {}, value);
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

Counter& Metrics::counter(const std::string& name, const std::string& help, const Labels& labels) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, help, "counter").counters[labels];
    if (!slot) slot = std::make_unique<Counter>();
    return *slot;
}

Gauge& Metrics::gauge(const std::string& name, const std::string& help, const Labels& labels) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, help, "gauge").gauges[labels];
    if (!slot) slot = std::make_unique<Gauge>();
    return *slot;
}

Histogram& Metrics::histogram(const std::string& name, const std::string& help, const Labels& labels) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, help, "histogram").histograms[labels];
    if (!slot) slot = std::make_unique<Histogram>();
    return *slot;
}

std::string Metrics::prometheus_text() const {
    PrometheusWriter out;
    write(out);
    return out.take();
}

void Metrics::write(PrometheusWriter& out) const {
    std::lock_guard lock(mu_);
    for (const auto& [name, f] : families_) {
        out.family(name, f.help, f.type);
        for (const auto& [labels, c] : f.counters) out.sample(name, labels, c->value());
        for (const auto& [labels, g] : f.gauges) out.sample(name, labels, g->value());
        for (const auto& [labels, h] : f.histograms) {
            std::int64_t cumulative = 0;
            Labels with_le = labels;
            with_le.emplace_back("le", "");
            for (std::size_t i = 0; i <= Histogram::kBounds.size(); ++i) {
                cumulative += h->bucket(i);
                with_le.back().second = i < Histogram::kBounds.size() ? fmt::format("{}", Histogram::kBounds[i]) : "+Inf";
                out.sample(name + "_bucket", with_le, cumulative);
            }
            out.sample(name + "_sum", labels, h->sum());
            out.sample(name + "_count", labels, h->count());
        }
    }
}

}  // namespace durable
