// `durable ui`: serves the web dashboard (the page, its JSON API under /api/v1/ and its live
// event stream) for the database until SIGINT or SIGTERM. It runs no host: the actions it
// takes (terminate, raise an event, ...) are written for the hosts that run the instances, and
// what any process commits reaches the page through the database's change feed.
//
// Loopback by default; with --http-token-file every API call and action needs the token
// (the page asks for it). `durable worker --http` serves the same dashboard beside /metrics.
#include <signal.h>

#include <cstdio>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <durable/dashboard.hpp>
#include <durable/http.hpp>

#include "cli/common.hpp"

namespace durable::cli {
namespace {

struct UiArgs {
    std::string http = "127.0.0.1:8080", http_token_file, log_level = "info";
    int threads = 16;
};

int run_ui(const GlobalOptions& g, const UiArgs& a) {
    if (a.threads < 4) throw UsageError(fmt::format("--threads must be at least 4, got {}", a.threads));
    auto level = spdlog::level::from_str(a.log_level);
    if (level == spdlog::level::off && a.log_level != "off") {
        throw UsageError(fmt::format("--log-level '{}' is not one of trace, debug, info, warn, error, off", a.log_level));
    }
    spdlog::set_level(level);
    http::HttpOptions ho;
    ho.listen = a.http.find(':') == std::string::npos ? "127.0.0.1:" + a.http
                : a.http.front() == ':'               ? "127.0.0.1" + a.http
                                                      : a.http;
    ho.threads = a.threads;
    std::optional<http::HttpServer> server;
    try {
        if (!a.http_token_file.empty()) ho.bearer_token = http::read_token_file(a.http_token_file);
        server.emplace(ho);
    } catch (const InvalidInput& e) {
        throw UsageError(e.what());
    }
    auto stop_signals = block_stop_signals();  // before the server's threads start
    auto db = open_database(g, true);
    http::DashboardOptions options;
    options.max_streams = static_cast<std::size_t>(a.threads) - 4;  // four threads stay for API calls
    http::add_dashboard_routes(*server, db, options);
    server->route("GET", "/healthz", [](const http::Request&, http::Response& res) { res.body = "ok\n"; });
    try {
        server->start();
    } catch (const Error& e) {
        throw Failure(e.what());
    }
    // One line on stdout a supervisor (or a test) can read: where the dashboard is.
    fmt::print("ui: http://{}:{}/\n", server->host(), server->port());
    std::fflush(stdout);
    spdlog::info("dashboard for {} on http://{}:{}/{}; stop it with Ctrl-C or SIGTERM", g.db, server->host(),
                 server->port(), ho.bearer_token.empty() ? "" : " (bearer token required)");
    int sig = 0;
    sigwait(&stop_signals, &sig);
    server->stop();
    return kExitOk;
}

}  // namespace

void add_ui_command(CLI::App& app, GlobalOptions& g, Commands& commands) {
    auto a = std::make_shared<UiArgs>();
    auto* sub = app.add_subcommand("ui", "Serve the web dashboard (instances, timelines, hosts, leases, live) until Ctrl-C");
    sub->add_option("--http", a->http,
                    "Address to serve on (host:port; a bare port means 127.0.0.1; port 0 picks a free one, printed "
                    "on stdout)")
        ->capture_default_str();
    sub->add_option("--http-token-file", a->http_token_file,
                    "Require 'Authorization: Bearer <token>' on every API call, with the token in this file's first "
                    "line (the page asks for it)");
    sub->add_option("--threads", a->threads, "Requests served at once (live pages hold one each)")->capture_default_str();
    sub->add_option("--log-level", a->log_level, "trace, debug, info, warn, error or off (logs go to stderr)")
        ->capture_default_str();
    commands.add(sub, [&g, a] { return run_ui(g, *a); });
}

}  // namespace durable::cli
