// The OTLP/HTTP-JSON span exporter: a bounded queue filled by the sink, one sender thread,
// requests through the resilience pipeline.
#include <httplib.h>
#include <pthread.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <fmt/format.h>
#include <mutex>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <thread>

#include "durable/errors.hpp"
#include "durable/otlp.hpp"
#include "store/named_thread.hpp"

namespace durable::http {
namespace {

using Json = nlohmann::json;

int kind_code(SpanKind k) {
    switch (k) {
        case SpanKind::Internal: return 1;
        case SpanKind::Server: return 2;
        case SpanKind::Client: return 3;
        case SpanKind::Producer: return 4;
        case SpanKind::Consumer: return 5;
    }
    return 0;
}

std::string percent_decode(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> parse_pairs(const char* var, const char* text) {
    std::vector<std::pair<std::string, std::string>> out;
    std::string s = text;
    std::size_t start = 0;
    while (start <= s.size()) {
        auto end = s.find(',', start);
        if (end == std::string::npos) end = s.size();
        std::string item = s.substr(start, end - start);
        auto trim = [](std::string x) {
            auto b = x.find_first_not_of(" \t");
            auto e = x.find_last_not_of(" \t");
            return b == std::string::npos ? std::string() : x.substr(b, e - b + 1);
        };
        item = trim(item);
        if (!item.empty()) {
            auto eq = item.find('=');
            if (eq == std::string::npos || eq == 0) {
                throw InvalidInput(fmt::format("{}: '{}' is not key=value", var, item));
            }
            try {
                out.emplace_back(trim(item.substr(0, eq)), percent_decode(trim(item.substr(eq + 1))));
            } catch (const std::exception&) {
                throw InvalidInput(fmt::format("{}: '{}' has a bad percent escape", var, item));
            }
        }
        start = end + 1;
    }
    return out;
}

}  // namespace

ResiliencePolicy OtlpOptions::default_policy() {
    ResiliencePolicy p;
    RetryOptions r;
    r.max_attempts = 3;
    r.base_delay = std::chrono::milliseconds(200);
    r.max_delay = std::chrono::milliseconds(2000);
    p.retry = r;
    p.attempt_timeout = std::chrono::seconds(10);
    CircuitBreakerOptions b;
    b.break_duration = std::chrono::seconds(5);
    p.breaker = b;
    return p;
}

std::optional<OtlpOptions> OtlpOptions::from_environment() {
    OtlpOptions o;
    if (const char* traces = std::getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); traces && *traces) {
        o.traces_url = traces;
    } else if (const char* base = std::getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); base && *base) {
        std::string b = base;
        while (!b.empty() && b.back() == '/') b.pop_back();
        o.traces_url = b + "/v1/traces";
    } else {
        return std::nullopt;
    }
    if (const char* h = std::getenv("OTEL_EXPORTER_OTLP_HEADERS"); h && *h) o.headers = parse_pairs("OTEL_EXPORTER_OTLP_HEADERS", h);
    if (const char* h = std::getenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS"); h && *h) {
        for (auto& kv : parse_pairs("OTEL_EXPORTER_OTLP_TRACES_HEADERS", h)) o.headers.push_back(std::move(kv));
    }
    if (const char* r = std::getenv("OTEL_RESOURCE_ATTRIBUTES"); r && *r) {
        o.resource_attributes = parse_pairs("OTEL_RESOURCE_ATTRIBUTES", r);
        for (const auto& [k, v] : o.resource_attributes) {
            if (k == "service.name") o.service_name = v;
        }
    }
    if (const char* n = std::getenv("OTEL_SERVICE_NAME"); n && *n) o.service_name = n;  // wins, as the spec says
    // The batch span processor's variables.
    auto number = [](const char* var) -> std::optional<long> {
        const char* v = std::getenv(var);
        if (!v || !*v) return std::nullopt;
        char* end = nullptr;
        long n = std::strtol(v, &end, 10);
        if (*end != '\0' || n <= 0) throw InvalidInput(fmt::format("{}='{}' is not a positive number", var, v));
        return n;
    };
    if (auto d = number("OTEL_BSP_SCHEDULE_DELAY")) o.flush_interval = std::chrono::milliseconds(*d);
    if (auto q = number("OTEL_BSP_MAX_QUEUE_SIZE")) o.max_queue = static_cast<std::size_t>(*q);
    if (auto b = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")) o.max_batch = static_cast<std::size_t>(*b);
    return o;
}

namespace {

// JSON text is written directly (no DOM): the exporter encodes every span of a busy host, and
// building a document per span cost more CPU than the host's own work per activity.
// Runs of characters that need no escape (nearly all: ids, names, attribute keys) are copied
// in one append.
void put_string(std::string& out, std::string_view v) {
    out += '"';
    std::size_t plain = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
        auto c = static_cast<unsigned char>(v[i]);
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        out.append(v.data() + plain, i - plain);
        plain = i + 1;
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default: fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
        }
    }
    out.append(v.data() + plain, v.size() - plain);
    out += '"';
}

void put_attribute(std::string& out, std::string_view key, const AttributeValue& v) {
    out += "{\"key\":";
    put_string(out, key);
    out += ",\"value\":{";
    if (const auto* s = std::get_if<std::string>(&v)) {
        out += "\"stringValue\":";
        put_string(out, *s);
    } else if (const auto* i = std::get_if<std::int64_t>(&v)) {
        fmt::format_to(std::back_inserter(out), "\"intValue\":\"{}\"", *i);  // int64 travels as a string in OTLP/JSON
    } else if (const auto* d = std::get_if<double>(&v)) {
        out += Json(*d).dump().insert(0, "\"doubleValue\":");
    } else {
        out += std::get<bool>(v) ? "\"boolValue\":true" : "\"boolValue\":false";
    }
    out += "}}";
}

}  // namespace

std::string OtlpExporter::encode(const OtlpOptions& options, const std::vector<Span>& spans) {
    std::string out;
    out.reserve(256 + spans.size() * 700);
    out += "{\"resourceSpans\":[{\"resource\":{\"attributes\":[";
    put_attribute(out, "service.name", options.service_name);
    for (const auto& [k, v] : options.resource_attributes) {
        if (k == "service.name") continue;
        out += ',';
        put_attribute(out, k, v);
    }
    out += ',';
    put_attribute(out, "telemetry.sdk.name", std::string("durable"));
    out += ',';
    put_attribute(out, "telemetry.sdk.language", std::string("cpp"));
    out += "]},\"scopeSpans\":[{\"scope\":{\"name\":\"durable\",\"version\":\"0.1.0\"},\"spans\":[";
    bool first = true;
    for (const auto& s : spans) {
        if (!first) out += ',';
        first = false;
        out += "{\"traceId\":";
        put_string(out, s.trace_id);
        out += ",\"spanId\":";
        put_string(out, s.span_id);
        if (!s.parent_span_id.empty()) {
            out += ",\"parentSpanId\":";
            put_string(out, s.parent_span_id);
        }
        out += ",\"name\":";
        put_string(out, s.name);
        fmt::format_to(std::back_inserter(out), ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",\"attributes\":[",
                       kind_code(s.kind), s.start_unix_ns, s.end_unix_ns);
        for (const auto& [k, v] : s.attributes) {
            put_attribute(out, k, v);
            out += ',';
        }
        out += "{\"key\":\"durable.correlation_id\",\"value\":{\"stringValue\":";
        put_string(out, s.correlation_id);
        out += "}}";
        out += "],\"status\":";
        if (s.ok) {
            out += "{\"code\":0}}";
        } else {
            out += "{\"code\":2,\"message\":";
            put_string(out, s.detail);
            out += "}}";
        }
    }
    out += "]}]}]}";
    return out;
}

struct OtlpExporter::Core {
    OtlpOptions options;
    std::string scheme_host_port, path;
    ResiliencePipeline pipeline;
    std::mutex mu;
    std::condition_variable cv, done_cv;
    std::deque<Span> queue;       // guarded by mu
    std::uint64_t enqueued = 0;   // guarded by mu: spans ever queued
    std::uint64_t handled = 0;    // guarded by mu: spans sent or given up
    bool stopping = false;        // guarded by mu
    bool flush_wanted = false;    // guarded by mu: a flush() waits; send now
    OtlpStats stats;              // guarded by mu
    CancellationToken stop_token;
    std::unique_ptr<httplib::Client> client;  // used by `thread` only
    std::thread thread;

    explicit Core(OtlpOptions o) : options(std::move(o)), pipeline("otlp-export", options.policy) {
        const auto& url = options.traces_url;
        auto scheme_end = url.find("://");
        if (scheme_end == std::string::npos || (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)) {
            throw InvalidInput(fmt::format("OTLP endpoint '{}' is not an http:// or https:// URL", url));
        }
        auto path_start = url.find('/', scheme_end + 3);
        scheme_host_port = path_start == std::string::npos ? url : url.substr(0, path_start);
        path = path_start == std::string::npos ? "/" : url.substr(path_start);
        if (options.max_queue == 0 || options.max_batch == 0) throw InvalidInput("OtlpOptions: max_queue and max_batch must be at least 1");
    }

    void offer(Span&& span) {
        {
            std::lock_guard lock(mu);
            if (stopping || queue.size() >= options.max_queue) {
                ++stats.dropped;
                return;
            }
            queue.push_back(std::move(span));  // moved, not copied: the host hands it over
            ++enqueued;
            ++stats.queued;
            if (queue.size() < options.max_batch) return;
        }
        cv.notify_one();
    }

    void send(const std::vector<Span>& batch) {
        std::string body = OtlpExporter::encode(options, batch);
        httplib::Headers headers;
        for (const auto& [k, v] : options.headers) headers.emplace(k, v);
        pipeline.execute(
            [&](const CancellationToken& token, int) -> nlohmann::json {
                (void)token;
                // One connection kept open between batches (the sender thread alone uses it); a
                // failed request drops it and the next attempt connects anew.
                if (!client) {
                    client = std::make_unique<httplib::Client>(scheme_host_port);
                    auto timeout = options.policy.attempt_timeout.value_or(std::chrono::seconds(10));
                    client->set_connection_timeout(timeout);
                    client->set_read_timeout(timeout);
                    client->set_write_timeout(timeout);
                    client->set_keep_alive(true);
                }
                auto res = client->Post(path, headers, body, "application/json");
                if (!res) client.reset();
                if (!res) {
                    throw Error(fmt::format("OTLP export to {}{} failed: {}", scheme_host_port, path,
                                            httplib::to_string(res.error())));
                }
                if (res->status >= 200 && res->status < 300) return nullptr;
                std::string msg = fmt::format("OTLP export to {}{}: HTTP {}: {}", scheme_host_port, path, res->status,
                                              res->body.substr(0, 200));
                // 429 and 5xx are worth retrying; other answers will not change.
                if (res->status == 429 || res->status >= 500) throw Error(msg);
                throw InvalidInput(msg);
            },
            stop_token);
    }

    void run() {
        std::unique_lock lock(mu);
        for (;;) {
            cv.wait_for(lock, options.flush_interval,
                        [&] { return stopping || flush_wanted || queue.size() >= options.max_batch; });
            flush_wanted = false;
            while (!queue.empty()) {
                std::vector<Span> batch;
                while (!queue.empty() && batch.size() < options.max_batch) {
                    batch.push_back(std::move(queue.front()));
                    queue.pop_front();
                }
                lock.unlock();
                bool ok = true;
                try {
                    send(batch);
                } catch (const std::exception& e) {
                    ok = false;
                    spdlog::warn("otlp: dropping {} spans: {}", batch.size(), e.what());
                }
                lock.lock();
                handled += batch.size();
                if (ok) {
                    stats.exported += batch.size();
                    ++stats.batches;
                } else {
                    stats.failed += batch.size();
                }
                done_cv.notify_all();
                if (stopping && !ok) {
                    // Stopping and the collector is failing: what is left is given up.
                    stats.failed += queue.size();
                    handled += queue.size();
                    queue.clear();
                    done_cv.notify_all();
                }
            }
            if (stopping) return;
        }
    }
};

OtlpExporter::OtlpExporter(OtlpOptions options) : core_(std::make_shared<Core>(std::move(options))) {
    auto* core = core_.get();
    core_->thread = durable::detail::named_thread("durable-otlp", [core] { core->run(); });
}

OtlpExporter::~OtlpExporter() {
    {
        std::lock_guard lock(core_->mu);
        core_->stopping = true;
    }
    core_->cv.notify_all();
    if (core_->thread.joinable()) core_->thread.join();
}

SpanSink OtlpExporter::sink() {
    std::weak_ptr<Core> weak = core_;
    return [weak](Span&& span) {
        if (auto core = weak.lock()) core->offer(std::move(span));
    };
}

bool OtlpExporter::flush(std::chrono::milliseconds timeout) {
    std::unique_lock lock(core_->mu);
    std::uint64_t target = core_->enqueued;
    if (core_->handled >= target) return true;
    // The sender goes now rather than at its next interval.
    core_->flush_wanted = true;
    core_->cv.notify_all();
    return core_->done_cv.wait_for(lock, timeout, [&] { return core_->handled >= target; });
}

OtlpStats OtlpExporter::stats() const {
    std::lock_guard lock(core_->mu);
    return core_->stats;
}

}  // namespace durable::http
