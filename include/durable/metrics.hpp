// durable/metrics.hpp — counters, gauges and histograms, exposed in Prometheus text format.
//
// Thread safety: every method is safe to call from any thread; updates are lock-free
// (relaxed atomics), registration takes a lock.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace durable {

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
    // The metric named `name` (created on first use). Names follow Prometheus rules;
    // `labels` is the label set as text, e.g. `activity="charge"`.
    Counter& counter(const std::string& name, const std::string& help, const std::string& labels = {});
    Gauge& gauge(const std::string& name, const std::string& help, const std::string& labels = {});
    Histogram& histogram(const std::string& name, const std::string& help, const std::string& labels = {});
    // Everything, in Prometheus text exposition format.
    std::string prometheus_text() const;

private:
    struct Family {
        std::string help, type;
        std::map<std::string, std::unique_ptr<Counter>> counters;
        std::map<std::string, std::unique_ptr<Gauge>> gauges;
        std::map<std::string, std::unique_ptr<Histogram>> histograms;
    };
    Family& family(const std::string& name, const std::string& help, const char* type);
    mutable std::mutex mu_;
    std::map<std::string, Family> families_;  // guarded by mu_
};

}  // namespace durable
