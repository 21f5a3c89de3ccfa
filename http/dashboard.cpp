// The dashboard: its routes (the embedded page, the JSON API, the event stream) on one server.
#include "durable/dashboard.hpp"

#include <fmt/format.h>

#include "durable/errors.hpp"
#include "http/dashboard_parts.hpp"

namespace durable::http {
namespace detail {

void add_dashboard_page(HttpServer& server) {
    // The page runs only its own script and style and talks only to this server: an injected
    // value that escaped the page's text-only rendering would still not run.
    auto serve = [](const PageAsset& a, Response& res) {
        res.content_type = a.content_type;
        res.body = std::string(a.body);
        res.headers.emplace_back("Content-Security-Policy",
                                 "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                 "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
        res.headers.emplace_back("X-Content-Type-Options", "nosniff");
        res.headers.emplace_back("Referrer-Policy", "no-referrer");
        res.headers.emplace_back("Cache-Control", "no-cache");
    };
    const PageAsset* index = nullptr;
    for (const auto& a : page_assets()) {
        if (std::string_view(a.name) == "index.html") index = &a;
    }
    if (!index) throw Error("the dashboard's index.html is not embedded (http/ui is incomplete)");
    server.route("GET", "/", [index, serve](const Request&, Response& res) { serve(*index, res); }, Access::Public);
    server.route(
        "GET", "/ui/",
        [serve](const Request& req, Response& res) {
            std::string_view name = std::string_view(req.path).substr(4);
            for (const auto& a : page_assets()) {
                if (name == a.name) return serve(a, res);
            }
            res.status = 404;
            res.body = fmt::format("no file {} in the dashboard\n", req.path);
        },
        Access::Public);
}

}  // namespace detail

void add_dashboard_routes(HttpServer& server, Database db, DashboardOptions options) {
    if (options.max_streams < 1) throw InvalidInput("DashboardOptions::max_streams must be at least 1");
    if (options.max_page < 1) throw InvalidInput("DashboardOptions::max_page must be at least 1");
    detail::add_dashboard_page(server);
    detail::add_dashboard_api(server, db, options);
    detail::add_event_stream(server, db, options);
}

}  // namespace durable::http
