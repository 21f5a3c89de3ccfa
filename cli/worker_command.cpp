// `durable worker`: runs a Host with the example orchestrations and activities on the database
// until SIGINT or SIGTERM, then stops it gracefully (running episodes finish, leases are
// released). `--only` and `--activities` start split workers: a host claims only instances
// of the orchestrations it registers and runs only the activities it registers (the others
// go through the task table to a worker that has them).
//
// The signals are blocked in every thread before the host starts its threads, and the main
// thread waits for them with sigwait: no signal handler, no flag polling.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <durable/dashboard.hpp>
#include <durable/http.hpp>
#include <durable/otlp.hpp>

#include "cli/common.hpp"
#include "orchestrations/orchestrations.hpp"

namespace durable::cli {
namespace {

struct WorkerArgs {
    std::string host_id, lease = "10s", poll = "50ms", log_level = "info", only;
    std::vector<std::string> activities;
    int threads = 4, episode_threads = 1;
    bool exit_with_parent = false;
    std::string http, http_token_file;
};

// "9464" and ":9464" mean loopback; "host:port" as given.
std::string listen_address(const std::string& text) {
    if (text.find(':') == std::string::npos) return "127.0.0.1:" + text;
    if (text.front() == ':') return "127.0.0.1" + text;
    return text;
}

int run_worker(const GlobalOptions& g, const WorkerArgs& a) {
    HostOptions options =
        host_options_from({a.host_id, a.lease, a.poll, a.log_level, a.threads, a.episode_threads});
    auto stop_signals = block_stop_signals();  // inherited by the host's threads
    if (a.exit_with_parent) {
        // The demo's workers must not outlive it: its death sends us SIGTERM (handled below).
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1) return kExitOk;  // the parent is already gone
    }

    auto all = orchestrations::make_registry();
    auto known = all->activity_names();
    for (const auto& name : a.activities) {
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            throw UsageError(fmt::format("--activities: no activity named '{}'; the known ones are: {}", name,
                                         fmt::join(known, ", ")));
        }
    }
    if (a.only == "orchestrations" && !a.activities.empty()) {
        throw UsageError("--activities cannot be combined with --only orchestrations (that worker runs no activity)");
    }
    const bool run_orchestrations = a.only != "activities";
    const bool run_activities = a.only != "orchestrations";
    auto registry = std::make_shared<Registry>(all->filtered([&](bool orchestrator, const std::string& name) {
        if (orchestrator) return run_orchestrations;
        if (!run_activities) return false;
        return a.activities.empty() || std::find(a.activities.begin(), a.activities.end(), name) != a.activities.end();
    }));
    // Spans go to an OpenTelemetry collector when the OTEL_* variables name one.
    std::optional<http::OtlpExporter> exporter;
    try {
        if (auto otlp = http::OtlpOptions::from_environment()) {
            exporter.emplace(*otlp);
            options.span_sink = exporter->sink();
        }
    } catch (const InvalidInput& e) {
        throw UsageError(e.what());
    }
    std::optional<http::HttpServer> server;
    if (!a.http.empty()) {
        http::HttpOptions ho;
        ho.listen = listen_address(a.http);
        ho.threads = 8;  // the dashboard's live pages hold a thread each (at most 4 of them)
        try {
            if (!a.http_token_file.empty()) ho.bearer_token = http::read_token_file(a.http_token_file);
            server.emplace(ho);
        } catch (const InvalidInput& e) {
            throw UsageError(e.what());
        }
    } else if (!a.http_token_file.empty()) {
        throw UsageError("--http-token-file needs --http");
    }

    auto db = open_database(g, false);
    Host host(db, registry, options);
    orchestrations::set_host_label(host.id());
    host.start();
    if (server) {
        http::add_host_routes(*server, host);
        http::add_dashboard_routes(*server, db, http::DashboardOptions{});
        try {
            server->start();
        } catch (const Error& e) {
            host.stop();
            throw Failure(e.what());
        }
        // One line on stdout a supervisor (or a test) can read: where the endpoint is.
        fmt::print("http: listening on {}:{}\n", server->host(), server->port());
        std::fflush(stdout);
    }
    spdlog::info("worker {} running on {} (lease {} ms, {} activity threads); stop it with Ctrl-C or SIGTERM",
                 host.id(), g.db, options.lease_duration.count(), options.activity_threads);
    spdlog::info("worker {} runs {} orchestrations and {} activities{}", host.id(),
                 registry->orchestrator_names().size(), registry->activity_names().size(),
                 a.activities.empty() ? std::string() : fmt::format(" ({})", fmt::join(a.activities, ", ")));

    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("worker {}: {} received, stopping", host.id(), sig == SIGINT ? "SIGINT" : "SIGTERM");
    if (server) server->stop();
    host.stop();
    if (exporter) exporter->flush(std::chrono::seconds(5));
    auto s = host.stats();
    spdlog::info("worker {} stopped: {} episodes, {} activities, {} completed, {} failed, {} claims, {} takeovers",
                 host.id(), s.episodes, s.activities, s.completed, s.failed, s.claims, s.takeovers);
    return kExitOk;
}

}  // namespace

void add_worker_command(CLI::App& app, GlobalOptions& g, Commands& commands) {
    auto a = std::make_shared<WorkerArgs>();
    auto* sub = app.add_subcommand("worker", "Run a worker host with the example orchestrations until SIGINT/SIGTERM");
    sub->add_option("--host-id", a->host_id, "This host's id (default: hostname-pid-random)");
    sub->add_option("--lease", a->lease, "Lease duration (renewed every half of it; at least 100ms)")
        ->capture_default_str();
    sub->add_option("--threads", a->threads, "Activity worker threads")->capture_default_str();
    sub->add_option("--episode-threads", a->episode_threads, "Threads running orchestrator code")
        ->capture_default_str();
    sub->add_option("--poll", a->poll, "How often to look for other processes' work (at least 5ms)")
        ->capture_default_str();
    sub->add_option("--only", a->only,
                    "Run only orchestrations (their activities go to activity workers) or only activities")
        ->check(CLI::IsMember({"orchestrations", "activities"}));
    sub->add_option("--activities", a->activities, "Run only these activities (comma-separated)")->delimiter(',');
    sub->add_option("--log-level", a->log_level, "trace, debug, info, warn, error or off (logs go to stderr)")
        ->capture_default_str();
    sub->add_option("--http", a->http,
                    "Serve /metrics, /healthz, /readyz and the dashboard (/, /api/v1/) on this address (host:port; a bare port means "
                    "127.0.0.1; port 0 picks a free one, printed on stdout)");
    sub->add_option("--http-token-file", a->http_token_file,
                    "Require 'Authorization: Bearer <token>' with the token in this file's first line");
    sub->add_flag("--exit-with-parent", a->exit_with_parent, "Stop when the parent process dies (used by the demo)")
        ->group("");  // hidden
    commands.add(sub, [&g, a] { return run_worker(g, *a); });
}

}  // namespace durable::cli
