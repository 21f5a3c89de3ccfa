// The dashboard's JSON API under /api/v1/ (routes and errors: durable/dashboard.hpp and the
// README's "Dashboard" section). Every answer is built from the public Client; nothing here
// speaks SQL. Unknown query parameters are refused (400) so that a misspelt filter never
// silently shows everything.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <set>

#include "durable/client.hpp"
#include "durable/errors.hpp"
#include "http/dashboard_parts.hpp"

namespace durable::http::detail {
namespace {

using Json = nlohmann::json;

// A request the API refuses, with its status and code; thrown by the parsers below and
// answered by `guarded`.
struct Refusal {
    int status;
    std::string code, message;
};

[[noreturn]] void refuse(int status, std::string code, std::string message) {
    throw Refusal{status, std::move(code), std::move(message)};
}

Json opt(const std::optional<std::string>& v) { return v ? Json(*v) : Json(); }
Json opt(const std::optional<std::int64_t>& v) { return v ? Json(*v) : Json(); }

Json summary_json(const InstanceState& s) {
    return Json{{"id", s.id},
                {"name", s.name},
                {"version", s.version},
                {"status", std::string(to_string(s.status))},
                {"created_at_ms", s.created_at_ms},
                {"updated_at_ms", s.updated_at_ms},
                {"completed_at_ms", opt(s.completed_at_ms)},
                {"parent_id", opt(s.parent_id)},
                {"custom_status", s.custom_status}};
}

Json detail_json(const InstanceState& s) {
    Json j = summary_json(s);
    j["execution_id"] = s.execution_id;
    j["input"] = s.input;
    j["output"] = s.output;
    j["error"] = s.error;
    j["lease_owner"] = opt(s.lease_owner);
    j["lease_expires_at_ms"] = s.lease_owner ? Json(s.lease_expires_at_ms) : Json();
    return j;
}

std::int64_t parse_int(const std::string& name, const std::string& text) {
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) {
        refuse(400, "bad_parameter", fmt::format("'{}' must be an integer, got '{}'", name, text));
    }
    return v;
}

// Milliseconds since the epoch, or an ISO-8601 UTC time (2026-11-28T10:00:00Z, seconds and
// milliseconds optional).
std::int64_t parse_time(const std::string& name, const std::string& text) {
    if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return parse_int(name, text);
    }
    std::tm tm{};
    int ms = 0, consumed = 0;
    int n = std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                        &tm.tm_min, &consumed);
    std::string rest = n == 5 ? text.substr(static_cast<std::size_t>(consumed)) : std::string();
    bool ok = n == 5;
    if (ok && rest.size() >= 3 && rest[0] == ':') {
        int secs_len = 0;
        ok = std::sscanf(rest.c_str(), ":%2d%n", &tm.tm_sec, &secs_len) == 1;
        rest = rest.substr(static_cast<std::size_t>(secs_len));
        if (ok && rest.size() >= 2 && rest[0] == '.') {
            std::size_t digits = 1;
            while (digits < rest.size() && digits <= 3 && rest[digits] >= '0' && rest[digits] <= '9') {
                ms = ms * 10 + (rest[digits] - '0');
                ++digits;
            }
            for (std::size_t k = digits; k <= 3; ++k) ms *= 10;
            rest = rest.substr(digits);
        }
    }
    if (!ok || rest != "Z") {
        refuse(400, "bad_parameter",
               fmt::format("'{}' must be milliseconds since the epoch or a UTC time like 2026-11-28T10:00:00Z, got '{}'",
                           name, text));
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return static_cast<std::int64_t>(timegm(&tm)) * 1000 + ms;
}

void only_params(const Request& req, std::initializer_list<const char*> allowed) {
    for (const auto& [k, v] : req.query) {
        if (std::none_of(allowed.begin(), allowed.end(), [&k = k](const char* a) { return k == a; })) {
            refuse(400, "bad_parameter", fmt::format("unknown parameter '{}' (known: {})", k, fmt::join(allowed, ", ")));
        }
    }
}

std::optional<std::string> param(const Request& req, const char* name) {
    auto it = req.query.find(name);
    if (it == req.query.end() || it->second.empty()) return std::nullopt;
    return it->second;
}

Json parse_body(const Request& req) {
    if (req.body.empty()) return Json::object();
    try {
        Json j = Json::parse(req.body);
        if (!j.is_object()) refuse(400, "bad_body", "the request body must be a JSON object");
        return j;
    } catch (const Json::parse_error& e) {
        refuse(400, "bad_body", fmt::format("the request body is not JSON: {}", e.what()));
    }
}

std::string string_field(const Json& body, const char* name) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) return {};
    if (!it->is_string()) refuse(400, "bad_body", fmt::format("'{}' must be a string", name));
    return it->get<std::string>();
}

// Runs `fn`, turning refusals and the Client's errors into JSON errors.
template <typename Fn>
void guarded(Response& res, Fn&& fn) {
    try {
        fn();
    } catch (const Refusal& r) {
        json_error(res, r.status, r.code, r.message);
    } catch (const InstanceNotFound& e) {
        json_error(res, 404, "instance_not_found", e.what());
    } catch (const InvalidInput& e) {
        json_error(res, 400, "invalid_input", e.what());
    }
}

// How many of the newest audit entries an action filter looks through.
constexpr int kActionScan = 10'000;

class Api {
public:
    Api(Database db, DashboardOptions options) : db_(db), client_(std::move(db)), options_(options) {}

    void instances(const Request& req, Response& res) const {
        only_params(req, {"status", "name", "prefix", "from", "to", "limit", "after", "order"});
        QueryFilter f;
        if (auto s = param(req, "status")) {
            std::size_t start = 0;
            while (start <= s->size()) {
                auto comma = s->find(',', start);
                auto word = s->substr(start, comma == std::string::npos ? std::string::npos : comma - start);
                auto st = status_from_string(word);
                if (!st) {
                    refuse(400, "bad_parameter",
                           fmt::format("unknown status '{}' (one or more of Pending, Running, Suspended, Completed, "
                                       "Failed, Terminated, comma-separated)",
                                       word));
                }
                f.statuses.push_back(*st);
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
        }
        f.name = param(req, "name");
        f.id_prefix = param(req, "prefix");
        if (auto t = param(req, "from")) f.created_from = std::chrono::system_clock::time_point(std::chrono::milliseconds(parse_time("from", *t)));
        if (auto t = param(req, "to")) f.created_to = std::chrono::system_clock::time_point(std::chrono::milliseconds(parse_time("to", *t)));
        if (f.created_from && f.created_to && *f.created_to < *f.created_from) {
            refuse(400, "bad_parameter", "'to' is before 'from'");
        }
        std::int64_t limit = 50;
        if (auto l = param(req, "limit")) limit = parse_int("limit", *l);
        if (limit < 1 || limit > static_cast<std::int64_t>(options_.max_page)) {
            refuse(400, "bad_parameter", fmt::format("'limit' must be between 1 and {}", options_.max_page));
        }
        auto order = param(req, "order").value_or("desc");
        if (order != "asc" && order != "desc") {
            refuse(400, "bad_parameter", fmt::format("'order' must be asc or desc, got '{}'", order));
        }
        f.newest_first = order == "desc";
        auto page = client_.query(f, static_cast<std::size_t>(limit), param(req, "after"));
        Json list = Json::array();
        for (const auto& s : page.instances) list.push_back(summary_json(s));
        json_answer(res, Json{{"instances", std::move(list)}, {"next", opt(page.next)}});
    }

    void counts(const Request& req, Response& res) const {
        only_params(req, {});
        Json counts = Json::object();
        std::int64_t total = 0;
        for (const auto& [st, n] : client_.count_by_status()) {
            counts[std::string(to_string(st))] = n;
            total += n;
        }
        json_answer(res, Json{{"counts", std::move(counts)}, {"total", total}});
    }

    // /api/v1/instances/{id}[/history | /{action}]: the id is one %-escaped path segment.
    void instance_get(const Request& req, Response& res) const {
        auto [id, rest] = split_instance_path(req);
        if (rest.empty()) {
            only_params(req, {});
            auto state = found(id);
            Json j = detail_json(state);
            QueryFilter children;
            children.parent_id = id;
            auto page = client_.query(children, 100);
            Json kids = Json::array();
            for (const auto& c : page.instances) kids.push_back(summary_json(c));
            j["children"] = std::move(kids);
            j["more_children"] = page.next.has_value();
            json_answer(res, j);
        } else if (rest == "history") {
            only_params(req, {"from", "limit"});
            std::int64_t from = 0, limit = 1000;
            if (auto f = param(req, "from")) from = parse_int("from", *f);
            if (auto l = param(req, "limit")) limit = parse_int("limit", *l);
            if (from < 0) refuse(400, "bad_parameter", "'from' must be 0 or more");
            if (limit < 1 || limit > 10'000) refuse(400, "bad_parameter", "'limit' must be between 1 and 10000");
            auto events = client_.history(id, from, static_cast<int>(limit) + 1);
            Json list = Json::array();
            for (std::size_t i = 0; i < events.size() && i < static_cast<std::size_t>(limit); ++i) {
                list.push_back(Json{{"seq", events[i].seq}, {"event", events[i].event}});
            }
            Json next = events.size() > static_cast<std::size_t>(limit) ? Json(events[static_cast<std::size_t>(limit)].seq) : Json();
            json_answer(res, Json{{"instance", id}, {"events", std::move(list)}, {"next", next}});
        } else if (rest == "audit") {
            only_params(req, {"limit"});
            audit_answer(req, res, id);
        } else {
            refuse(404, "not_found", fmt::format("no route GET .../instances/{{id}}/{}", rest));
        }
    }

    void instance_post(const Request& req, Response& res) {
        auto [id, action] = split_instance_path(req);
        if (action.empty()) refuse(404, "not_found", "POST needs an action: .../instances/{id}/terminate, ...");
        only_params(req, {});
        Json body = parse_body(req);
        std::string reason = string_field(body, "reason");
        try {
            if (action == "terminate") {
                bool recursive = true;
                if (auto it = body.find("recursive"); it != body.end()) {
                    if (!it->is_boolean()) refuse(400, "bad_body", "'recursive' must be true or false");
                    recursive = it->get<bool>();
                }
                client_.terminate(id, reason, recursive);
            } else if (action == "suspend") {
                client_.suspend(id, reason);
            } else if (action == "resume") {
                client_.resume(id, reason);
            } else if (action == "raise-event") {
                std::string name = string_field(body, "name");
                if (name.empty()) refuse(400, "bad_body", "raise-event needs {\"name\": \"...\", \"payload\": ...}");
                client_.raise_event(id, name, body.value("payload", Json()));
            } else if (action == "purge") {
                if (!client_.purge(id)) refuse(404, "instance_not_found", fmt::format("no instance '{}' to purge", id));
            } else {
                refuse(404, "not_found",
                       fmt::format("unknown action '{}' (terminate, suspend, resume, raise-event, purge)", action));
            }
        } catch (const InstanceNotFound&) {
            throw;
        } catch (const InvalidInput& e) {
            // The instance exists but its state refuses the action (finished, or still running
            // for a purge): a conflict, not a malformed request.
            if (auto s = client_.get_status(id)) {
                refuse(409, "conflict", fmt::format("{} (instance is {})", e.what(), to_string(s->status)));
            }
            throw;
        }
        json_answer(res, Json{{"instance", id}, {"action", action}, {"accepted", true}}, 202);
    }

    void hosts(const Request& req, Response& res) const {
        only_params(req, {});
        const auto now = db_.clock()->now_ms();
        auto leases = client_.leases();
        Json list = Json::array();
        for (const auto& h : client_.hosts()) {
            Json held = Json::array();
            for (const auto& l : leases) {
                if (l.owner == h.id) held.push_back(lease_json(l, now));
            }
            list.push_back(Json{{"id", h.id},
                                {"hostname", h.hostname},
                                {"pid", h.pid},
                                {"started_at_ms", h.started_at_ms},
                                {"heartbeat_at_ms", h.heartbeat_at_ms},
                                {"stopped_at_ms", opt(h.stopped_at_ms)},
                                {"live", h.live_at(now)},
                                {"lease_ms", h.lease_ms},
                                {"orchestrations", h.orchestrations},
                                {"versions", h.versions},
                                {"activities", h.activities},
                                {"leases", std::move(held)}});
        }
        json_answer(res, Json{{"now_ms", now}, {"hosts", std::move(list)}});
    }

    void leases(const Request& req, Response& res) const {
        only_params(req, {});
        const auto now = db_.clock()->now_ms();
        std::set<std::string> live;
        for (const auto& h : client_.hosts()) {
            if (h.live_at(now)) live.insert(h.id);
        }
        Json list = Json::array();
        for (const auto& l : client_.leases()) {
            Json j = lease_json(l, now);
            j["owner_live"] = live.count(l.owner) > 0;
            list.push_back(std::move(j));
        }
        json_answer(res, Json{{"now_ms", now}, {"leases", std::move(list)}});
    }

    void audit(const Request& req, Response& res) const {
        only_params(req, {"instance", "limit", "action"});
        audit_answer(req, res, param(req, "instance"));
    }

private:
    static Json lease_json(const LeaseInfo& l, std::int64_t now) {
        return Json{{"instance_id", l.instance_id},
                    {"name", l.name},
                    {"status", std::string(to_string(l.status))},
                    {"owner", l.owner},
                    {"expires_at_ms", l.expires_at_ms},
                    {"expired", l.expires_at_ms < now}};
    }

    void audit_answer(const Request& req, Response& res, const std::optional<std::string>& instance) const {
        std::int64_t limit = 100;
        if (auto l = param(req, "limit")) limit = parse_int("limit", *l);
        if (limit < 1 || limit > 10'000) refuse(400, "bad_parameter", "'limit' must be between 1 and 10000");
        // An action filter (e.g. takeover, for the hosts page) reads the newest entries and
        // keeps that action's: the log has no index by action, and a page of recent ones is
        // what is asked for.
        auto action = param(req, "action");
        Json list = Json::array();
        for (const auto& a : client_.audit_log(instance, action ? kActionScan : static_cast<int>(limit))) {
            if (action && a.action != *action) continue;
            if (list.size() >= static_cast<std::size_t>(limit)) break;
            list.push_back(Json{{"at_ms", a.at_ms},
                                {"actor", a.actor},
                                {"action", a.action},
                                {"instance_id", opt(a.instance_id)},
                                {"detail", opt(a.detail)}});
        }
        json_answer(res, Json{{"entries", std::move(list)}});
    }

    InstanceState found(const std::string& id) const {
        auto s = client_.get_status(id);
        if (!s) refuse(404, "instance_not_found", fmt::format("no instance '{}' (never scheduled, or purged)", id));
        return *s;
    }

    // {id, rest} from /api/v1/instances/<id>[/<rest>], the id %-decoded from the path as sent.
    static std::pair<std::string, std::string> split_instance_path(const Request& req) {
        static const std::string prefix = "/api/v1/instances/";
        const std::string& raw = req.raw_path.empty() ? req.path : req.raw_path;
        if (raw.rfind(prefix, 0) != 0) refuse(404, "not_found", "not found");
        std::string tail = raw.substr(prefix.size());
        auto slash = tail.find('/');
        std::string id = percent_decode(tail.substr(0, slash));
        std::string rest = slash == std::string::npos ? std::string() : percent_decode(tail.substr(slash + 1));
        if (id.empty()) refuse(404, "not_found", "no instance id in the path");
        return {id, rest};
    }

    Database db_;
    Client client_;
    DashboardOptions options_;
};

}  // namespace

void json_answer(Response& res, const nlohmann::json& body, int status) {
    res.status = status;
    res.content_type = "application/json";
    res.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    res.headers.emplace_back("Cache-Control", "no-store");
}

void json_error(Response& res, int status, std::string_view code, const std::string& message) {
    json_answer(res, Json{{"error", {{"code", code}, {"message", message}}}}, status);
}

std::string percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        int hi = i + 2 < text.size() ? hex(text[i + 1]) : -1;
        int lo = i + 2 < text.size() ? hex(text[i + 2]) : -1;
        if (hi < 0 || lo < 0) throw InvalidInput(fmt::format("malformed %-escape in '{}'", text));
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

void add_dashboard_api(HttpServer& server, const Database& db, const DashboardOptions& options) {
    auto api = std::make_shared<Api>(db, options);
    auto get = [&server, api](const std::string& path, void (Api::*fn)(const Request&, Response&) const) {
        server.route("GET", path, [api, fn](const Request& req, Response& res) {
            guarded(res, [&] { ((*api).*fn)(req, res); });
        });
    };
    get("/api/v1/instances", &Api::instances);
    get("/api/v1/counts", &Api::counts);
    get("/api/v1/instances/", &Api::instance_get);
    get("/api/v1/hosts", &Api::hosts);
    get("/api/v1/leases", &Api::leases);
    get("/api/v1/audit", &Api::audit);
    server.route("POST", "/api/v1/instances/", [api](const Request& req, Response& res) {
        guarded(res, [&] { api->instance_post(req, res); });
    });
}

}  // namespace durable::http::detail
