// test_host — a worker process for the multi-host tests.
//
//   test_host --db FILE --host-id ID --lease-ms N [--poll-ms N] [--activity-ms N] [--threads N]
//             [--max-active N] [--log FILE] [--orchestrations a,b|none] [--activities a,b|none]
//             [--order-versions 1,2]
//
// Runs one durable::Host on FILE with these orchestrations registered:
//   seq5           five sequential "step" activities (each sleeps --activity-ms, honouring
//                  cancellation); input: anything; output: 5.
//   v2             two sequential "step" activities; output: 2 (the new code of a rolling deploy).
//   long_activity  one "long" activity that sleeps input["ms"] milliseconds, honouring the
//                  cancellation token; output: "done".
//   traced         the sub-orchestration traced_child (whose "flaky" activity fails its first
//                  in-process attempt and succeeds on the retry), then "long" for input["ms"].
//   order          with --order-versions, each version listed: a "step", a wait for the event
//                  "go", then one "step" (version 1) or two (version 2); output "v1" / "v2" and
//                  the version the context reports ("v1/1"). Without the flag: not registered.
// With OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) set, spans are exported there (OTLP/HTTP).
// --orchestrations / --activities register only the names listed ("none": none of them), for
// split deployments: orchestration hosts, activity workers, old binaries.
// Every activity appends "instance_id task_id host_id start" to the --log file when it starts
// and "instance_id task_id host_id end" when it finishes uncancelled, so tests can count how
// often each activity ran and where. Each line is one O_APPEND write: lines from several
// threads (and several processes sharing a file) never interleave, and a line written before
// a SIGKILL is not lost (it is in the kernel's page cache).
//
// Protocol with the test: prints "ready" on stdout once the host runs; on SIGTERM (or SIGINT)
// stops the host gracefully, prints "stats {json}" (HostStats) and exits 0. Logs go to stderr.
// Exit code 2: bad arguments or the host could not start.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <durable/durable.hpp>
#include <durable/otlp.hpp>
#include <optional>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <string>

using namespace durable;

namespace {

struct Args {
    std::string db, host_id, log, orchestrations, activities, order_versions;
    int lease_ms = 1000, poll_ms = 50, activity_ms = 0, threads = 4, max_active = 0;
};

int log_fd = -1;          // the activity log; written by activity threads, set before start
std::string host_name;    // this host's id, for the log lines

void log_activity(const ActivityContext& ctx, const char* phase) {
    if (log_fd < 0) return;
    std::string line = fmt::format("{} {} {} {}\n", ctx.instance_id(), ctx.task_id(), host_name, phase);
    ssize_t n = ::write(log_fd, line.data(), line.size());
    (void)n;
}

// Sleeps `ms`, cut short by the activity's cancellation; false if cancelled.
bool nap(const ActivityContext& ctx, int ms) {
    if (ms <= 0) return !ctx.cancellation().cancelled();
    return ctx.cancellation().wait_for(SystemClock::instance(), std::chrono::milliseconds(ms));
}

Task<int> seq5(OrchestrationContext& ctx, Json) {
    int n = 0;
    for (int i = 0; i < 5; ++i) n = co_await ctx.call_activity<int>("step", n);
    co_return n;
}

Task<int> v2(OrchestrationContext& ctx, Json) {
    int n = co_await ctx.call_activity<int>("step", 0);
    co_return co_await ctx.call_activity<int>("step", n);
}

Task<std::string> order_v1(OrchestrationContext& ctx, Json) {
    int n = co_await ctx.call_activity<int>("step", 0);
    co_await ctx.wait_for_external_event<Json>("go");
    n = co_await ctx.call_activity<int>("step", n);
    co_return "v1/" + ctx.version();
}

Task<std::string> order_v2(OrchestrationContext& ctx, Json) {
    int n = co_await ctx.call_activity<int>("step", 0);
    co_await ctx.wait_for_external_event<Json>("go");
    n = co_await ctx.call_activity<int>("step", n);
    n = co_await ctx.call_activity<int>("step", n);
    co_return "v2/" + ctx.version();
}

Task<std::string> long_activity(OrchestrationContext& ctx, Json input) {
    int ms = input.is_object() ? input.value("ms", 1000) : 1000;
    co_await ctx.call_activity<bool>("long", ms);
    co_return "done";
}

Task<int> traced_child(OrchestrationContext& ctx, Json) {
    co_return co_await ctx.call_activity<int>("flaky", 1);
}

Task<std::string> traced(OrchestrationContext& ctx, Json input) {
    int ms = input.is_object() ? input.value("ms", 1000) : 1000;
    co_await ctx.call_sub_orchestration<int>("traced_child", Json(1));
    co_await ctx.call_activity<bool>("long", ms);
    co_return "done";
}

std::shared_ptr<Registry> make_registry(int activity_ms) {
    auto r = std::make_shared<Registry>();
    r->add_orchestrator("seq5", seq5);
    r->add_orchestrator("v2", v2);
    r->add_orchestrator("long_activity", long_activity);
    r->add_orchestrator("traced", traced);
    r->add_orchestrator("traced_child", traced_child);
    ActivitySettings retried;
    RetryOptions retry;
    retry.max_attempts = 3;
    retry.base_delay = std::chrono::milliseconds(5);
    retry.jitter = false;
    retried.policy = ResiliencePolicy{retry, std::nullopt, std::nullopt};
    r->add_activity("flaky", [](ActivityContext& ctx, int n) {
        if (ctx.attempt() == 1) throw std::runtime_error("flaky: the first attempt always fails");
        return n + 1;
    }, retried);
    r->add_activity("step", [activity_ms](ActivityContext& ctx, int n) {
        log_activity(ctx, "start");
        if (!nap(ctx, activity_ms)) throw Cancelled("the host is stopping");
        log_activity(ctx, "end");
        return n + 1;
    });
    r->add_activity("long", [](ActivityContext& ctx, int ms) {
        log_activity(ctx, "start");
        if (!nap(ctx, ms)) throw Cancelled("the host is stopping");
        log_activity(ctx, "end");
        return true;
    });
    return r;
}

bool parse(int argc, char** argv, Args& a) {
    for (int i = 1; i < argc; ++i) {
        std::string k = argv[i];
        if (i + 1 >= argc) return false;
        std::string v = argv[++i];
        try {
            if (k == "--db") {
                a.db = v;
            } else if (k == "--host-id") {
                a.host_id = v;
            } else if (k == "--log") {
                a.log = v;
            } else if (k == "--lease-ms") {
                a.lease_ms = std::stoi(v);
            } else if (k == "--poll-ms") {
                a.poll_ms = std::stoi(v);
            } else if (k == "--activity-ms") {
                a.activity_ms = std::stoi(v);
            } else if (k == "--threads") {
                a.threads = std::stoi(v);
            } else if (k == "--orchestrations") {
                a.orchestrations = v;
            } else if (k == "--activities") {
                a.activities = v;
            } else if (k == "--order-versions") {
                a.order_versions = v;
            } else if (k == "--max-active") {
                a.max_active = std::stoi(v);
            } else {
                return false;
            }
        } catch (const std::exception&) {
            return false;
        }
    }
    return !a.db.empty() && !a.host_id.empty();
}

}  // namespace

int main(int argc, char** argv) {
    Args args;
    if (!parse(argc, argv, args)) {
        std::fprintf(stderr,
                     "usage: test_host --db FILE --host-id ID --lease-ms N [--poll-ms N] [--activity-ms N] "
                     "[--threads N] [--max-active N] [--log FILE] [--orchestrations a,b|none] "
                     "[--activities a,b|none] [--order-versions 1,2]\n");
        return 2;
    }
    // Every thread the host starts inherits this mask; SIGTERM is taken by sigwait below.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    auto logger = spdlog::stderr_logger_mt("test_host");
    logger->set_pattern(fmt::format("%H:%M:%S.%e [{}] %l %v", args.host_id));
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(logger);

    host_name = args.host_id;
    if (!args.log.empty()) {
        log_fd = ::open(args.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0) {
            std::fprintf(stderr, "cannot open log '%s': %s\n", args.log.c_str(), std::strerror(errno));
            return 2;
        }
    }
    try {
        auto db = Database::open(args.db);
        HostOptions options;
        options.host_id = args.host_id;
        options.lease_duration = std::chrono::milliseconds(args.lease_ms);
        options.poll_interval = std::chrono::milliseconds(args.poll_ms);
        options.activity_threads = args.threads;
        if (args.max_active > 0) options.max_active_instances = static_cast<std::size_t>(args.max_active);
        options.logger = logger;
        std::optional<http::OtlpExporter> exporter;
        if (auto otlp = http::OtlpOptions::from_environment()) {
            exporter.emplace(*otlp);
            options.span_sink = exporter->sink();
        }
        // "a,b" keeps those names, "none" none, empty all.
        auto keeps = [](const std::string& list, const std::string& name) {
            if (list.empty()) return true;
            return ("," + list + ",").find("," + name + ",") != std::string::npos;
        };
        auto registry = std::make_shared<Registry>(make_registry(args.activity_ms)->filtered(
            [&](bool orchestrator, const std::string& name) {
                return keeps(orchestrator ? args.orchestrations : args.activities, name);
            }));
        for (std::size_t from = 0; !args.order_versions.empty() && from <= args.order_versions.size();) {
            auto comma = args.order_versions.find(',', from);
            auto v = args.order_versions.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
            if (v == "1") registry->add_orchestrator("order", order_v1, {.version = "1"});
            if (v == "2") registry->add_orchestrator("order", order_v2, {.version = "2"});
            if (comma == std::string::npos) break;
            from = comma + 1;
        }
        Host host(db, registry, options);
        host.start();
        std::printf("ready\n");
        std::fflush(stdout);

        int sig = 0;
        while (sigwait(&stop_signals, &sig) != 0) {
        }
        logger->info("signal {}: stopping", sig);
        host.stop();
        auto s = host.stats();
        Json j = {{"episodes", s.episodes},   {"activities", s.activities}, {"completed", s.completed},
                  {"failed", s.failed},       {"claims", s.claims},         {"takeovers", s.takeovers},
                  {"lease_conflicts", s.lease_conflicts}, {"renewals", s.renewals}, {"replays", s.replays}};
        std::printf("stats %s\n", j.dump().c_str());
        std::fflush(stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "test_host %s: %s\n", args.host_id.c_str(), e.what());
        return 2;
    }
    if (log_fd >= 0) close(log_fd);
    return 0;
}
