// durable/dashboard.hpp — the web dashboard and its JSON API (library durable_http).
//
// add_dashboard_routes() puts on an HttpServer:
//   * the page (/, /ui/app.js, /ui/app.css): plain HTML, CSS and JavaScript embedded in the
//     binary, served to anyone (they hold no data; every value the page shows comes from the
//     API and is set as text, never as HTML);
//   * the JSON API under /api/v1/ (instances with filters and keyset paging, one instance, its
//     history, counts, hosts, leases, the audit log, and the actions raise-event, terminate,
//     suspend, resume, purge as POSTs); errors are {"error": {"code", "message"}} with 400 (a
//     bad filter or body), 404 (no such instance or route), 409 (the instance's state refuses
//     the action) and, with a token set, 401;
//   * /api/v1/events: Server-Sent Events of every committed history event, fed by the
//     process's event distributor (which follows the database's change feed, so commits of
//     other processes arrive too). One message per change-feed row, `id:` its feed sequence;
//     a client reconnecting with Last-Event-ID gets what it missed from the distributor's
//     replay ring, or an `event: refetch` telling it to reload what it shows when that is gone.
//
// The README's "Dashboard" section lists every route with curl examples.
//
// Thread safety: call before HttpServer::start(); the handlers are thread-safe.
#pragma once

#include <chrono>
#include <cstddef>

#include "durable/database.hpp"
#include "durable/http.hpp"

namespace durable::http {

struct DashboardOptions {
    // Live event streams served at once (each holds one of the server's threads until the
    // page goes away): keep it below HttpOptions::threads so API calls still get a thread.
    std::size_t max_streams = 4;
    // A comment line on idle streams this often, so a dead client is noticed and proxies keep
    // the connection.
    std::chrono::milliseconds keepalive{10'000};
    // Largest page of the instance list (the `limit` parameter).
    std::size_t max_page = 1000;
};

// Adds the dashboard's page, API and event stream for the database `db` (shared with the
// process's hosts and clients) to `server`.
void add_dashboard_routes(HttpServer& server, Database db, DashboardOptions options = {});

}  // namespace durable::http
