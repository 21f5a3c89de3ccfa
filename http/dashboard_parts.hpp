// The dashboard's parts (see durable/dashboard.hpp): its JSON API, its event stream and its
// embedded page, each in its own file, and the JSON answers they share.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "durable/dashboard.hpp"

namespace durable::http::detail {

// An answer with a JSON body.
void json_answer(Response& res, const nlohmann::json& body, int status = 200);
// An error answer: {"error": {"code": code, "message": message}}.
void json_error(Response& res, int status, std::string_view code, const std::string& message);
// Decodes %XX escapes (and nothing else: '+' stays '+', as in a path). Throws InvalidInput for
// a malformed escape.
std::string percent_decode(std::string_view text);

// A file of the embedded page (generated from http/ui by cmake/embed_ui.cmake).
struct PageAsset {
    const char* name;          // "index.html", "app.js", ...
    const char* content_type;
    std::string_view body;
};
const std::vector<PageAsset>& page_assets();

void add_dashboard_api(HttpServer& server, const Database& db, const DashboardOptions& options);
void add_event_stream(HttpServer& server, const Database& db, const DashboardOptions& options);
void add_dashboard_page(HttpServer& server);

}  // namespace durable::http::detail
