// durable/metrics.hpp — counters, gauges and histograms, exposed in Prometheus text format.
//
// Labels are given as name/value pairs, never as text: every value is escaped as the text
// exposition format requires (backslash, double quote, line feed), so a value that comes from
// users (an orchestration or activity name) cannot end its label early and forge a series.
// Keep label values of bounded cardinality: names, host ids, statuses; never instance ids.
//
// Thread safety: every method is safe to call from any thread; updates are lock-free
// (relaxed atomics), registration takes a lock. A PrometheusWriter is used by one thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace durable {

// A label set: (name, value) pairs in the order they are written. Label names must match
// [a-zA-Z_][a-zA-Z0-9_]*; values are any text.
using Labels = std::vector<std::pair<std::string, std::string>>;

// `value` escaped for a label value in the Prometheus text format: \\ for a backslash, \" for
// a double quote, \n for a line feed.
std::string prometheus_escape(std::string_view value);

// Writes the Prometheus text exposition format (version 0.0.4): one `# HELP` and `# TYPE`
// per family, then its samples, label values escaped. The one writer of that format in
// durable: Metrics, Host::metrics_text and `durable metrics` all go through it.
class PrometheusWriter {
public:
    // Starts family `name` of `type` ("counter", "gauge", "histogram", "untyped"). Throws
    // std::invalid_argument for a name that is not a valid metric name.
    void family(std::string_view name, std::string_view help, std::string_view type);
    // One sample line: `name{labels} value`. `name` may extend the family's (`_bucket`, ...).
    void sample(std::string_view name, const Labels& labels, double value);
    void sample(std::string_view name, const Labels& labels, std::int64_t value);
    // A whole counter / gauge family with one unlabelled sample.
    void counter(std::string_view name, std::string_view help, std::int64_t value);
    void gauge(std::string_view name, std::string_view help, double value);
    const std::string& text() const { return out_; }
    std::string take() { return std::move(out_); }

private:
    void line(std::string_view name, const Labels& labels, const std::string& value);
    std::string out_;
};

class Counter {
public:
    void inc(std::int64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
    std::int64_t value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::int64_t> v_{0};
};

class Gauge {
public:
    void set(double v) { v_.store(v, std::memory_order_relaxed); }
    double value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> v_{0};
};

// A histogram of durations in seconds with fixed buckets from 10 µs to 10 s.
class Histogram {
public:
    static constexpr std::array<double, 13> kBounds = {1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
                                                       5e-3, 1e-2, 5e-2, 1e-1,  1.0,   10.0};
    void observe(double seconds);
    std::int64_t count() const { return count_.load(std::memory_order_relaxed); }
    double sum() const { return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9; }
    // The bucket bound below which `q` (0..1) of the observations fall (an upper estimate).
    double quantile(double q) const;
    std::int64_t bucket(std::size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }

private:
    std::array<std::atomic<std::int64_t>, kBounds.size() + 1> buckets_{};
    std::atomic<std::int64_t> count_{0}, sum_ns_{0};
};

class Metrics {
public:
    // The metric named `name` with `labels` (created on first use). Names follow Prometheus
    // rules; the references stay valid as long as the Metrics object.
    Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
    Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
    Histogram& histogram(const std::string& name, const std::string& help, const Labels& labels = {});
    // Everything, in Prometheus text exposition format.
    std::string prometheus_text() const;
    // Everything, appended to `out`.
    void write(PrometheusWriter& out) const;

private:
    struct Family {
        std::string help, type;
        std::map<Labels, std::unique_ptr<Counter>> counters;
        std::map<Labels, std::unique_ptr<Gauge>> gauges;
        std::map<Labels, std::unique_ptr<Histogram>> histograms;
    };
    Family& family(const std::string& name, const std::string& help, const char* type);
    mutable std::mutex mu_;
    std::map<std::string, Family> families_;  // guarded by mu_
};

}  // namespace durable
