// The benchmark's orchestrations and activities (see orchestrations.hpp).
#include "orchestrations.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <string>
#include <vector>

namespace durable::bench {
namespace {

// Set once before any host starts, read-only afterwards.
std::string g_host_label = "local";
int g_exec_log_fd = -1;

void log_execution(const ActivityContext& ctx) {
    if (g_exec_log_fd < 0) return;
    std::string line = ctx.idempotency_key();
    line += '\n';
    // One write per line: O_APPEND keeps lines whole, and the page cache keeps them past a
    // SIGKILL of this process.
    ssize_t n = ::write(g_exec_log_fd, line.data(), line.size());
    (void)n;
}

struct SequenceInput {
    int steps = 1;
};
void from_json(const Json& j, SequenceInput& in) {
    in.steps = j.at("steps").get<int>();
}

Task<Json> sequence(OrchestrationContext& ctx, SequenceInput in) {
    int v = 0;
    for (int i = 0; i + 1 < in.steps; ++i) v = co_await ctx.call_activity<int>("bench.step", v);
    co_return co_await ctx.call_activity<Json>("bench.last", v);
}

struct FanoutInput {
    int width = 1;
};
void from_json(const Json& j, FanoutInput& in) {
    in.width = j.at("width").get<int>();
}

Task<std::int64_t> fanout(OrchestrationContext& ctx, FanoutInput in) {
    std::vector<Task<int>> calls;
    calls.reserve(static_cast<std::size_t>(in.width));
    for (int i = 0; i < in.width; ++i) calls.push_back(ctx.call_activity<int>("bench.step", i));
    auto values = co_await when_all(std::move(calls));
    std::int64_t sum = 0;
    for (int v : values) sum += v;
    co_return sum;
}

// Waits for event "go" (an integer) and returns it plus one.
Task<std::int64_t> idle(OrchestrationContext& ctx, Json) {
    auto v = co_await ctx.wait_for_external_event<std::int64_t>("go");
    co_return v + 1;
}

}  // namespace

void set_host_label(const std::string& label) {
    g_host_label = label;
}

void set_execution_log(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        throw InvalidInput(fmt::format("cannot open the activity execution log '{}': {}; check that its directory "
                                       "is writable",
                                       path, std::strerror(errno)));
    }
    if (g_exec_log_fd >= 0) ::close(g_exec_log_fd);
    g_exec_log_fd = fd;
}

std::shared_ptr<Registry> make_registry() {
    auto r = std::make_shared<Registry>();
    r->add_activity("bench.step", [](ActivityContext& ctx, int v) {
        log_execution(ctx);
        return v + 1;
    });
    r->add_activity("bench.last", [](ActivityContext& ctx, int v) {
        log_execution(ctx);
        return Json{{"v", v + 1}, {"host", g_host_label}};
    });
    r->add_orchestrator(kSequence, sequence);
    r->add_orchestrator(kFanout, fanout);
    r->add_orchestrator(kIdle, idle);
    return r;
}

Json sequence_input(int steps) {
    return Json{{"steps", steps}};
}

Json fanout_input(int width) {
    return Json{{"width", width}};
}

std::string check_sequence_output(const Json& output, int steps) {
    if (!output.is_object() || !output.contains("v") || !output["v"].is_number_integer() ||
        output["v"].get<int>() != steps || !output.contains("host") || !output["host"].is_string()) {
        return fmt::format("expected {{\"v\": {}, \"host\": ...}}, got {}", steps, output.dump().substr(0, 200));
    }
    return {};
}

std::string check_fanout_output(const Json& output, int width) {
    std::int64_t expected = static_cast<std::int64_t>(width) * (width + 1) / 2;
    if (!output.is_number_integer() || output.get<std::int64_t>() != expected) {
        return fmt::format("expected {}, got {}", expected, output.dump().substr(0, 200));
    }
    return {};
}

}  // namespace durable::bench
