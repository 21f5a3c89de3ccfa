// `durable serve`: a worker host (the example orchestrations, as `durable worker`) that also
// serves the Durable Task sidecar protocol over gRPC, until SIGINT or SIGTERM.
//
// Stop order: the gRPC server first (new calls UNAVAILABLE, waits and streams ended, calls in
// flight finish), then the host (episodes finish, commits flushed, leases released).
#include <signal.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <durable/dashboard.hpp>
#include <durable/http.hpp>
#include <optional>

#include "cli/common.hpp"
#include "orchestrations/orchestrations.hpp"
#include "server/activity_sequence.hpp"
#include "server/remote_activity.hpp"
#include "server/remote_orchestrator.hpp"
#include "server/sidecar_server.hpp"
#include "server/work_items.hpp"

namespace durable::cli {
namespace {

struct ServeArgs {
    std::string host_id, lease = "10s", poll = "50ms", log_level = "info", listen = "127.0.0.1:4001";
    std::string grace = "5s";
    std::string http, http_token_file;  // /metrics, probes and the dashboard, as `worker --http`
    int threads = 16, episode_threads = 1, max_outstanding = 64;
};

int run_serve(const GlobalOptions& g, const ServeArgs& a) {
    HostOptions options =
        host_options_from({a.host_id, a.lease, a.poll, a.log_level, a.threads, a.episode_threads});
    auto grace = parse_duration(a.grace, "--grace");
    // Blocked before any thread starts (host's and gRPC's inherit the mask); the main thread
    // takes them with sigwait.
    auto stop_signals = block_stop_signals();

    if (a.max_outstanding < 1) {
        throw UsageError(fmt::format("--max-outstanding must be at least 1, got {}", a.max_outstanding));
    }
    std::optional<http::HttpServer> web;
    if (!a.http.empty()) {
        http::HttpOptions ho;
        ho.listen = a.http.find(':') == std::string::npos ? "127.0.0.1:" + a.http
                    : a.http.front() == ':'               ? "127.0.0.1" + a.http
                                                          : a.http;
        ho.threads = 8;  // the dashboard's live pages hold a thread each (at most 4 of them)
        try {
            if (!a.http_token_file.empty()) ho.bearer_token = http::read_token_file(a.http_token_file);
            web.emplace(ho);
        } catch (const InvalidInput& e) {
            throw UsageError(e.what());
        }
    } else if (!a.http_token_file.empty()) {
        throw UsageError("--http-token-file needs --http");
    }
    auto db = open_database(g, false);
    // The example orchestrations and activity_sequence run here; every orchestration and
    // activity without C++ code goes to the connected workers.
    auto hub = std::make_shared<server::WorkItemHub>(static_cast<std::size_t>(a.max_outstanding));
    auto registry = orchestrations::make_registry();
    server::register_activity_sequence(*registry);
    registry->set_default_activity(server::remote_activity(hub));
    registry->set_default_orchestrator(server::remote_orchestrator(hub));
    Host host(db, registry, options);
    orchestrations::set_host_label(host.id());
    host.start();

    server::ServerOptions so;
    so.listen = a.listen;
    so.actor = "serve@" + host.id();
    so.max_payload_bytes = options.max_payload_bytes;
    so.max_outstanding_per_stream = static_cast<std::size_t>(a.max_outstanding);
    server::SidecarServer server(db, host, registry, so, hub);
    try {
        server.start();
    } catch (const Error&) {
        host.stop();
        throw;
    }
    if (web) {
        http::add_host_routes(*web, host);
        http::add_dashboard_routes(*web, db, http::DashboardOptions{});
        try {
            web->start();
        } catch (const Error& e) {
            server.shutdown(grace);
            host.stop();
            throw Failure(e.what());
        }
        fmt::print("http: listening on {}:{}\n", web->host(), web->port());
    }
    // One line on stdout for whoever started us (tests read the port from it).
    fmt::print("serving {} on port {}\n", a.listen, server.port());
    std::fflush(stdout);
    spdlog::info("serve {} on {} (port {}), database {}; stop it with Ctrl-C or SIGTERM", host.id(), a.listen,
                 server.port(), g.db);

    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("serve {}: {} received, stopping", host.id(), sig == SIGINT ? "SIGINT" : "SIGTERM");
    if (web) web->stop();
    server.shutdown(grace);
    host.stop();
    spdlog::info("serve {} stopped", host.id());
    return kExitOk;
}

}  // namespace

void add_serve_command(CLI::App& app, GlobalOptions& g, Commands& commands) {
    auto a = std::make_shared<ServeArgs>();
    auto* sub = app.add_subcommand(
        "serve", "Run a worker host that also serves the Durable Task sidecar protocol (gRPC) until SIGINT/SIGTERM");
    sub->add_option("--listen", a->listen,
                    "host:port to listen on (port 0: a free one); loopback unless you choose otherwise")
        ->capture_default_str();
    sub->add_option("--host-id", a->host_id, "This host's id (default: hostname-pid-random)");
    sub->add_option("--lease", a->lease, "Lease duration (renewed every half of it)")->capture_default_str();
    sub->add_option("--threads", a->threads,
                    "Activity threads (an activity run by a connected worker holds one while it runs)")
        ->capture_default_str();
    sub->add_option("--max-outstanding", a->max_outstanding,
                    "Work items sent to one worker stream and not yet answered, at most")
        ->capture_default_str();
    sub->add_option("--episode-threads", a->episode_threads, "Threads running orchestrator code")
        ->capture_default_str();
    sub->add_option("--poll", a->poll, "How often to look for other processes' work")->capture_default_str();
    sub->add_option("--grace", a->grace, "How long calls in flight may finish when stopping")->capture_default_str();
    sub->add_option("--log-level", a->log_level, "trace, debug, info, warn, error or off (logs go to stderr)")
        ->capture_default_str();
    sub->add_option("--http", a->http,
                    "Also serve /metrics, /healthz, /readyz and the dashboard (/, /api/v1/) on this address (host:port; "
                    "a bare port means 127.0.0.1; port 0 picks a free one, printed on stdout)");
    sub->add_option("--http-token-file", a->http_token_file,
                    "Require 'Authorization: Bearer <token>' with the token in this file's first line");
    commands.add(sub, [&g, a] { return run_serve(g, *a); });
}

}  // namespace durable::cli
