// The dashboard's JSON API and event stream (http/dashboard*.cpp) against a real host on a
// real database, through a real HTTP client: every route, its filters and paging, its errors
// (404, 400, 401, 405, 409, 503), the actions as POSTs, and the SSE stream with Last-Event-ID.
// The page itself is driven in a browser by tests/ui (the ui/ ctest tests).
#include <doctest/doctest.h>

#include <httplib.h>

#include <signal.h>

#include <atomic>
#include <durable/dashboard.hpp>
#include <fmt/format.h>
#include <durable/durable.hpp>
#include <durable/http.hpp>
#include <thread>

#include "support/engine_fixture.hpp"
#include "support/process.hpp"
#include "support/store_kinds.hpp"
#include "support/temp_dir.hpp"

using namespace durable;
using namespace std::chrono_literals;

namespace {

Task<int> twice(OrchestrationContext& ctx, int n) {
    int a = co_await ctx.call_activity<int>("inc", n);
    co_return co_await ctx.call_activity<int>("inc", a);
}

Task<Json> waits(OrchestrationContext& ctx, Json) { co_return co_await ctx.wait_for_external_event<Json>("go"); }

Task<int> parent(OrchestrationContext& ctx, int n) { co_return co_await ctx.call_sub_orchestration<int>("twice", n); }

std::shared_ptr<Registry> registry() {
    auto r = std::make_shared<Registry>();
    r->add_orchestrator("twice", twice);
    r->add_orchestrator("waits", waits);
    r->add_orchestrator("parent", parent);
    r->add_activity("inc", [](ActivityContext&, int n) { return n + 1; });
    return r;
}

// A host on a fresh file, and the dashboard served for it on a free loopback port.
struct Dashboard {
    explicit Dashboard(std::string token = {}, http::DashboardOptions o = fast_options())
        : engine(registry()), server(options(token)) {
        http::add_dashboard_routes(server, engine.db, o);
        server.start();
    }
    static http::HttpOptions options(const std::string& token) {
        http::HttpOptions o;
        o.listen = "127.0.0.1:0";
        o.bearer_token = token;
        o.threads = 8;
        return o;
    }
    static http::DashboardOptions fast_options() {
        http::DashboardOptions o;
        o.keepalive = 100ms;  // the stream readers below get called back often, so their waits stay bounded
        o.max_streams = 3;
        return o;
    }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", server.port());
        c.set_read_timeout(10, 0);
        return c;
    }
    Json get(const std::string& path, int expect = 200) const {
        auto c = client();
        auto r = c.Get(path.c_str());
        REQUIRE(r);
        INFO(path, " -> ", r->body);
        CHECK(r->status == expect);
        CHECK(r->get_header_value("Content-Type") == "application/json");
        return Json::parse(r->body);
    }
    Json post(const std::string& path, const Json& body, int expect) const {
        auto c = client();
        auto r = c.Post(path.c_str(), body.dump(), "application/json");
        REQUIRE(r);
        INFO(path, " -> ", r->body);
        CHECK(r->status == expect);
        return Json::parse(r->body);
    }
    durable::test::Engine engine;
    http::HttpServer server;
};

std::string code_of(const Json& j) { return j.at("error").at("code").get<std::string>(); }

// The SSE messages read from `path` until `done` says so, the server ends the stream, or 20 s
// pass (then `timed_out` is set).
struct SseMessage {
    std::string id, event;
    Json data;
};
std::vector<SseMessage> read_stream(const Dashboard& d, const std::string& path, const httplib::Headers& headers,
                                    const std::function<bool(const std::vector<SseMessage>&)>& done,
                                    bool* timed_out = nullptr) {
    auto c = d.client();
    std::vector<SseMessage> out;
    std::string buffer;
    SseMessage current;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    auto r = c.Get(path.c_str(), headers, [&](const char* data, std::size_t len) {
        buffer.append(data, len);
        std::size_t nl;
        while ((nl = buffer.find('\n')) != std::string::npos) {
            std::string line = buffer.substr(0, nl);
            buffer.erase(0, nl + 1);
            if (line.empty()) {
                if (!current.event.empty()) out.push_back(current);
                current = SseMessage{};
            } else if (line.rfind("id: ", 0) == 0) {
                current.id = line.substr(4);
            } else if (line.rfind("event: ", 0) == 0) {
                current.event = line.substr(7);
            } else if (line.rfind("data: ", 0) == 0) {
                current.data = Json::parse(line.substr(6));
            }
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            if (timed_out) *timed_out = true;
            return false;
        }
        return !done(out);
    });
    return out;
}

bool has_completed(const std::vector<SseMessage>& ms, const std::string& id) {
    for (const auto& m : ms) {
        if (m.event != "commit") continue;
        for (const auto& e : m.data["events"]) {
            if (e["instance"] == id && e["event"]["t"] == "ExecutionCompleted") return true;
        }
    }
    return false;
}

}  // namespace

TEST_CASE_TEMPLATE("instance queries filter by id prefix and parent, page newest first, and count every status", S,
                   DURABLE_TEST_STORES) {
    durable::test::EngineOn<S> e(registry());
    auto c = e.client();
    for (const char* id : {"order-1", "order-2", "order-3", "order_x", "other-1"}) {
        ScheduleOptions so;
        so.instance_id = id;
        c.schedule("twice", 1, so);
    }
    ScheduleOptions so;
    so.instance_id = "waiting";
    c.schedule("waits", Json(), so);
    so.instance_id = "parent-1";
    c.schedule("parent", 2, so);
    for (const char* id : {"order-1", "order-2", "order-3", "order_x", "other-1", "parent-1"}) {
        REQUIRE(c.wait_for_completion(id, 20s).status == Status::Completed);
    }
    REQUIRE(c.wait_for_start("waiting", 20s).status == Status::Running);

    QueryFilter f;
    f.id_prefix = "order-";  // '-' and '_' are not wildcards
    auto page = c.query(f, 10);
    REQUIRE(page.instances.size() == 3);
    CHECK(page.instances[0].id == "order-1");
    CHECK(page.instances[2].id == "order-3");
    f.newest_first = true;
    page = c.query(f, 2);
    REQUIRE(page.instances.size() == 2);
    CHECK(page.instances[0].id == "order-3");
    CHECK(page.instances[1].id == "order-2");
    REQUIRE(page.next);
    page = c.query(f, 2, page.next);
    REQUIRE(page.instances.size() == 1);
    CHECK(page.instances[0].id == "order-1");
    CHECK(!page.next);
    f.id_prefix = "order_";
    CHECK(c.query(f, 10).instances.size() == 1);

    QueryFilter kids;
    kids.parent_id = "parent-1";
    page = c.query(kids, 10);
    REQUIRE(page.instances.size() == 1);
    CHECK(page.instances[0].name == "twice");

    auto counts = c.count_by_status();
    REQUIRE(counts.size() == 6);
    std::map<Status, std::int64_t> by;
    for (auto [st, n] : counts) by[st] = n;
    CHECK(by[Status::Completed] == 7);  // five, the parent and its child
    CHECK(by[Status::Running] == 1);
    CHECK(by[Status::Failed] == 0);
}

TEST_CASE("dashboard API lists, filters and pages instances and shows one with its history and children") {
    Dashboard d;
    auto c = d.engine.client();
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(c.schedule("twice", i));
    ScheduleOptions so;
    so.instance_id = "parent-1";
    c.schedule("parent", 10, so);
    for (const auto& id : ids) REQUIRE(c.wait_for_completion(id, 20s).status == Status::Completed);
    REQUIRE(c.wait_for_completion("parent-1", 20s).status == Status::Completed);
    auto waiting = c.schedule("waits", Json{{"x", 1}});
    REQUIRE(c.wait_for_start(waiting, 20s).status == Status::Running);

    // Newest first by default, with a keyset cursor.
    // (parent-1's child, "parent-1:...", sorts after the generated ids.)
    auto all = d.get("/api/v1/instances?limit=3&name=twice");
    REQUIRE(all["instances"].size() == 3);
    CHECK(all["instances"][1]["id"] == ids[4]);
    CHECK(all["instances"][2]["id"] == ids[3]);
    CHECK(all["instances"][1]["status"] == "Completed");
    REQUIRE(all["next"].is_string());
    auto rest = d.get("/api/v1/instances?limit=3&name=twice&after=" + all["next"].get<std::string>());
    REQUIRE(rest["instances"].size() == 3);
    CHECK(rest["instances"][0]["id"] == ids[2]);
    CHECK(rest["instances"][2]["id"] == ids[0]);
    CHECK(rest["next"].is_null());
    auto asc = d.get("/api/v1/instances?order=asc&limit=1&name=twice");
    CHECK(asc["instances"][0]["id"] == ids[0]);
    auto running = d.get("/api/v1/instances?status=Running,Suspended");
    REQUIRE(running["instances"].size() == 1);
    CHECK(running["instances"][0]["id"] == waiting);
    auto prefix = d.get("/api/v1/instances?prefix=parent-");
    REQUIRE(prefix["instances"].size() == 2);  // parent-1 and its child
    CHECK(prefix["instances"][0]["parent_id"] == "parent-1");
    CHECK(prefix["instances"][1]["name"] == "parent");
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    CHECK(d.get("/api/v1/instances?limit=100&from=0&to=" + std::to_string(now + 60'000))["instances"].size() == 8);
    CHECK(d.get("/api/v1/instances?from=" + std::to_string(now + 60'000))["instances"].empty());
    CHECK(d.get("/api/v1/instances?to=2000-01-01T00:00:00Z")["instances"].empty());
    CHECK(d.get("/api/v1/instances?from=2000-01-01T00:00:00.5Z&limit=100")["instances"].size() == 8);

    auto counts = d.get("/api/v1/counts");
    CHECK(counts["counts"]["Completed"] == 7);
    CHECK(counts["counts"]["Running"] == 1);
    CHECK(counts["counts"]["Terminated"] == 0);
    CHECK(counts["total"] == 8);

    auto p = d.get("/api/v1/instances/parent-1");
    CHECK(p["status"] == "Completed");
    CHECK(p["input"] == 10);
    CHECK(p["output"] == 12);
    REQUIRE(p["children"].size() == 1);
    CHECK(p["children"][0]["name"] == "twice");
    auto child = d.get("/api/v1/instances/" + p["children"][0]["id"].get<std::string>());
    CHECK(child["parent_id"] == "parent-1");

    auto h = d.get("/api/v1/instances/" + ids[0] + "/history");
    REQUIRE(h["events"].size() >= 6);
    CHECK(h["events"][0]["seq"] == 0);
    CHECK(h["events"][0]["event"]["t"] == "ExecutionStarted");
    CHECK(h["events"].back()["event"]["t"] == "ExecutionCompleted");
    CHECK(h["next"].is_null());
    auto h2 = d.get("/api/v1/instances/" + ids[0] + "/history?from=1&limit=2");
    REQUIRE(h2["events"].size() == 2);
    CHECK(h2["events"][0]["seq"] == 1);
    CHECK(h2["next"] == 3);

    auto w = d.get("/api/v1/instances/" + waiting);
    CHECK(w["status"] == "Running");
    CHECK(w["input"]["x"] == 1);
    CHECK(w["error"].is_null());

    auto hosts = d.get("/api/v1/hosts");
    REQUIRE(hosts["hosts"].size() == 1);
    CHECK(hosts["hosts"][0]["id"] == d.engine.host->id());
    CHECK(hosts["hosts"][0]["live"] == true);
    CHECK(!hosts["hosts"][0]["orchestrations"].empty());
    auto leases = d.get("/api/v1/leases");
    CHECK(leases["leases"].is_array());
    for (const auto& l : leases["leases"]) {
        CHECK(l["owner"] == d.engine.host->id());
        CHECK(l["owner_live"] == true);
    }
}

TEST_CASE("dashboard API ids that hold slashes, spaces and markup round-trip through the path") {
    Dashboard d;
    auto c = d.engine.client();
    const std::string hostile = "<img src=x onerror=alert(1)>/a b?c#d%";
    ScheduleOptions so;
    so.instance_id = hostile;
    c.schedule("twice", 1, so);
    REQUIRE(c.wait_for_completion(hostile, 20s).status == Status::Completed);
    auto list = d.get("/api/v1/instances");
    REQUIRE(list["instances"].size() == 1);
    CHECK(list["instances"][0]["id"] == hostile);
    std::string escaped;
    for (unsigned char ch : hostile) escaped += fmt::format("%{:02X}", ch);
    CHECK(d.get("/api/v1/instances/" + escaped)["id"] == hostile);
    CHECK(d.get("/api/v1/instances/" + escaped + "/history")["instance"] == hostile);
}

TEST_CASE("dashboard API errors: unknown id 404, bad filters 400, wrong method 405, all as JSON") {
    Dashboard d;
    CHECK(code_of(d.get("/api/v1/instances/nope", 404)) == "instance_not_found");
    CHECK(code_of(d.get("/api/v1/instances/nope/history", 404)) == "instance_not_found");
    CHECK(code_of(d.get("/api/v1/instances/nope/whatever", 404)) == "not_found");
    CHECK(code_of(d.get("/api/v1/nothing-here", 404)) == "not_found");
    CHECK(code_of(d.get("/api/v1/instances?status=Done", 400)) == "bad_parameter");
    CHECK(code_of(d.get("/api/v1/instances?status=Running,", 400)) == "bad_parameter");
    CHECK(code_of(d.get("/api/v1/instances?limit=0", 400)) == "bad_parameter");
    CHECK(code_of(d.get("/api/v1/instances?limit=100000", 400)) == "bad_parameter");
    CHECK(code_of(d.get("/api/v1/instances?limit=ten", 400)) == "bad_parameter");
    CHECK(code_of(d.get("/api/v1/instances?from=yesterday", 400)) == "bad_parameter");
    CHECK(code_of(d.get("/api/v1/instances?from=2000&to=1000", 400)) == "bad_parameter");
    CHECK(code_of(d.get("/api/v1/instances?order=sideways", 400)) == "bad_parameter");
    CHECK(code_of(d.get("/api/v1/instances?stauts=Running", 400)) == "bad_parameter");  // a typo is not ignored
    CHECK(code_of(d.get("/api/v1/counts?x=1", 400)) == "bad_parameter");
    CHECK(code_of(d.get("/api/v1/audit?limit=-1", 400)) == "bad_parameter");
    CHECK(code_of(d.get("/api/v1/instances/x/history?from=-1", 400)) == "bad_parameter");
    CHECK(code_of(d.get("/api/v1/instances/%zz", 400)) == "invalid_input");
    auto c = d.client();
    auto r = c.Post("/api/v1/hosts", "{}", "application/json");
    REQUIRE(r);
    CHECK(r->status == 405);
    CHECK(code_of(Json::parse(r->body)) == "method_not_allowed");
    // Actions are never GETs: a link cannot terminate anything.
    auto g = c.Get("/api/v1/instances/x/terminate");
    REQUIRE(g);
    CHECK(g->status == 404);
}

TEST_CASE("dashboard actions are POSTs: raise-event, suspend, resume, terminate and purge, with 404 and 409") {
    Dashboard d;
    auto c = d.engine.client();
    auto a = c.schedule("waits", Json());
    REQUIRE(c.wait_for_start(a, 20s).status == Status::Running);
    auto base = "/api/v1/instances/" + a;

    CHECK(code_of(d.post(base + "/raise-event", Json{{"payload", 1}}, 400)) == "bad_body");
    CHECK(code_of(d.post(base + "/fly", Json::object(), 404)) == "not_found");
    auto cl = d.client();
    auto bad = cl.Post((base + "/terminate").c_str(), "not json", "application/json");
    REQUIRE(bad);
    CHECK(bad->status == 400);
    CHECK(code_of(d.post("/api/v1/instances/nope/terminate", Json::object(), 404)) == "instance_not_found");
    CHECK(code_of(d.post("/api/v1/instances/nope/purge", Json::object(), 404)) == "instance_not_found");
    CHECK(code_of(d.post(base + "/purge", Json::object(), 409)) == "conflict");  // still running

    CHECK(d.post(base + "/suspend", Json{{"reason", "look"}}, 202)["accepted"] == true);
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (c.get_status(a)->status != Status::Suspended && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(c.get_status(a)->status == Status::Suspended);
    d.post(base + "/resume", Json::object(), 202);
    d.post(base + "/raise-event", Json{{"name", "go"}, {"payload", {{"ok", true}}}}, 202);
    auto done = c.wait_for_completion(a, 20s);
    REQUIRE(done.status == Status::Completed);
    CHECK(done.output["ok"] == true);
    CHECK(code_of(d.post(base + "/terminate", Json::object(), 409)) == "conflict");  // finished
    CHECK(code_of(d.post(base + "/raise-event", Json{{"name", "go"}}, 409)) == "conflict");

    auto b = c.schedule("waits", Json());
    REQUIRE(c.wait_for_start(b, 20s).status == Status::Running);
    d.post("/api/v1/instances/" + b + "/terminate", Json{{"reason", "from the dashboard"}}, 202);
    REQUIRE(c.wait_for_completion(b, 20s).status == Status::Terminated);
    d.post("/api/v1/instances/" + b + "/purge", Json::object(), 202);
    CHECK(!c.get_status(b));

    // Every action is in the audit log, per instance and overall.
    auto audit = d.get("/api/v1/audit?instance=" + a);
    std::vector<std::string> actions;
    for (const auto& e : audit["entries"]) actions.push_back(e["action"]);
    CHECK(std::find(actions.begin(), actions.end(), "suspend") != actions.end());
    CHECK(std::find(actions.begin(), actions.end(), "resume") != actions.end());
    CHECK(std::find(actions.begin(), actions.end(), "raise_event") != actions.end());
    CHECK(d.get("/api/v1/instances/" + a + "/audit")["entries"].size() == audit["entries"].size());
    CHECK(d.get("/api/v1/audit?limit=2")["entries"].size() == 2);
    auto suspends = d.get("/api/v1/audit?action=suspend");
    REQUIRE(suspends["entries"].size() == 1);
    CHECK(suspends["entries"][0]["instance_id"] == a);
    CHECK(suspends["entries"][0]["detail"] == "look");
    CHECK(d.get("/api/v1/audit?action=takeover")["entries"].empty());
}

TEST_CASE("dashboard with a token: API and actions need it (401 JSON), the page's files do not") {
    Dashboard d("s3cret");
    auto c = d.client();
    for (const char* path : {"/api/v1/instances", "/api/v1/counts", "/api/v1/hosts", "/api/v1/leases",
                             "/api/v1/audit", "/api/v1/instances/x", "/api/v1/events"}) {
        auto r = c.Get(path);
        REQUIRE(r);
        INFO(path);
        CHECK(r->status == 401);
        CHECK(code_of(Json::parse(r->body)) == "unauthorized");
    }
    auto id = d.engine.client().schedule("waits", Json());
    auto post = c.Post(("/api/v1/instances/" + id + "/terminate").c_str(), "{}", "application/json");
    REQUIRE(post);
    CHECK(post->status == 401);
    CHECK(d.engine.client().get_status(id)->status != Status::Terminated);
    httplib::Headers wrong = {{"Authorization", "Bearer s3cre7"}};
    CHECK(c.Get("/api/v1/instances", wrong)->status == 401);
    httplib::Headers auth = {{"Authorization", "Bearer s3cret"}};
    CHECK(c.Get("/api/v1/instances", auth)->status == 200);
    CHECK(c.Post(("/api/v1/instances/" + id + "/terminate").c_str(), auth, "{}", "application/json")->status == 202);

    auto page = c.Get("/");
    REQUIRE(page);
    CHECK(page->status == 200);
    CHECK(page->get_header_value("Content-Type").find("text/html") == 0);
    CHECK(page->get_header_value("Content-Security-Policy").find("script-src 'self'") != std::string::npos);
    CHECK(page->body.find("/ui/app.js") != std::string::npos);
    auto js = c.Get("/ui/app.js");
    REQUIRE(js);
    CHECK(js->status == 200);
    CHECK(js->get_header_value("Content-Type").find("text/javascript") == 0);
    // The page puts data on screen as text only.
    CHECK(js->body.find(".innerHTML") == std::string::npos);
    CHECK(js->body.find("outerHTML") == std::string::npos);
    CHECK(js->body.find("insertAdjacentHTML") == std::string::npos);
    CHECK(js->body.find("document.write") == std::string::npos);
    CHECK(c.Get("/ui/app.css")->status == 200);
    CHECK(c.Get("/ui/nothing.js")->status == 404);
}

TEST_CASE("dashboard event stream: commits of the host arrive as rows with feed ids, and Last-Event-ID resumes") {
    Dashboard d;
    auto c = d.engine.client();
    std::atomic<bool> started{false}, scheduled{false};
    std::string id;  // written before `scheduled` is set, read after
    std::vector<SseMessage> first;
    std::thread reader([&] {
        first = read_stream(d, "/api/v1/events", {}, [&](const std::vector<SseMessage>& ms) {
            started = true;
            return scheduled && has_completed(ms, id);
        });
    });
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!started && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    REQUIRE(started);
    // Two commits at least (a host may run a short instance in one): the start, then the
    // event and the completion.
    id = c.schedule("waits", Json());
    scheduled = true;
    REQUIRE(c.wait_for_start(id, 20s).status == Status::Running);
    c.raise_event(id, "go", 1);
    REQUIRE(c.wait_for_completion(id, 20s).status == Status::Completed);
    reader.join();
    REQUIRE(!first.empty());
    CHECK(first.front().event == "ready");
    CHECK(first.front().data["resumed"] == false);
    std::vector<std::int64_t> seqs;
    std::int64_t last_feed = 0;
    std::string first_feed_id;
    for (const auto& m : first) {
        if (m.event != "commit") continue;
        CHECK(m.id == std::to_string(m.data["feed_seq"].get<std::int64_t>()));
        CHECK(m.data["feed_seq"].get<std::int64_t>() > last_feed);  // in feed order
        last_feed = m.data["feed_seq"];
        if (first_feed_id.empty()) first_feed_id = m.id;
        for (const auto& e : m.data["events"]) {
            if (e["instance"] == id) seqs.push_back(e["seq"]);
        }
    }
    // Every event of the instance, once, in order.
    auto history = c.history(id);
    REQUIRE(seqs.size() == history.size());
    for (std::size_t i = 0; i < seqs.size(); ++i) CHECK(seqs[i] == static_cast<std::int64_t>(i));

    // Reconnecting after the first row replays the rest of the instance's events from there.
    auto resumed = read_stream(d, "/api/v1/events?instance=" + id, {{"Last-Event-ID", first_feed_id}},
                               [&](const std::vector<SseMessage>& ms) { return has_completed(ms, id); });
    REQUIRE(!resumed.empty());
    CHECK(resumed.front().data["resumed"] == true);
    std::vector<std::int64_t> again;
    for (const auto& m : resumed) {
        CHECK(m.event != "refetch");
        if (m.event != "commit") continue;
        CHECK(std::stoll(m.id) > std::stoll(first_feed_id));
        for (const auto& e : m.data["events"]) again.push_back(e["seq"]);
    }
    REQUIRE(!again.empty());
    CHECK(again.back() == static_cast<std::int64_t>(history.size()) - 1);
    for (std::size_t i = 1; i < again.size(); ++i) CHECK(again[i] == again[i - 1] + 1);
    CHECK(again.front() > 0);

    // A Last-Event-ID this process cannot resume from: the page is told to refetch.
    auto unknown = read_stream(d, "/api/v1/events", {{"Last-Event-ID", "999999"}},
                               [](const std::vector<SseMessage>& ms) { return ms.size() >= 2; });
    REQUIRE(unknown.size() >= 2);
    CHECK(unknown[1].event == "refetch");
    auto cl = d.client();
    auto bad = cl.Get("/api/v1/events", {{"Last-Event-ID", "abc"}});
    REQUIRE(bad);
    CHECK(bad->status == 400);
    CHECK(cl.Get("/api/v1/events?bogus=1")->status == 400);
}

TEST_CASE("dashboard event stream: at most max_streams at once (503), and stopping the server ends open streams") {
    Dashboard d;
    std::atomic<int> ready{0};
    std::vector<std::thread> readers;
    bool timed_out[3] = {false, false, false};
    for (int i = 0; i < 3; ++i) {
        readers.emplace_back([&, i] {
            read_stream(
                d, "/api/v1/events", {},
                [&, counted = false](const std::vector<SseMessage>& ms) mutable {
                    if (!counted && !ms.empty()) {
                        counted = true;
                        ++ready;
                    }
                    return false;  // read until the server ends the stream (or 20 s)
                },
                &timed_out[i]);
        });
    }
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (ready < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    REQUIRE(ready == 3);
    auto c = d.client();
    auto r = c.Get("/api/v1/events");
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(code_of(Json::parse(r->body)) == "too_many_streams");
    CHECK(c.Get("/api/v1/counts")->status == 200);  // API calls still get a thread
    d.server.stop();
    for (auto& t : readers) t.join();
    // The readers returned because the server ended their streams, not at their 20 s bound.
    for (bool t : timed_out) CHECK(!t);
}

TEST_CASE("durable ui serves the dashboard of a file other processes write, needs its token, and stops on SIGTERM") {
    durable::test::TempDir dir;
    const std::string bin = std::string(DURABLE_BIN_DIR) + "/durable";
    const std::string db = dir.file("ui.db");
    {
        auto db_handle = Database::open(db);
        Host host(db_handle, registry());
        host.start();
        auto c = host.client();
        ScheduleOptions so;
        so.instance_id = "from-a-worker";
        c.schedule("twice", 3, so);
        REQUIRE(c.wait_for_completion("from-a-worker", 20s).status == Status::Completed);
        host.stop();
    }
    {
        std::ofstream(dir.file("token")) << "tok\n";
    }
    durable::test::Process ui(bin, {"--db", db, "ui", "--http", "127.0.0.1:0", "--http-token-file", dir.file("token"),
                                    "--log-level", "warn"},
                              {dir.file("ui.err")});
    auto line = ui.wait_for_prefix("ui: http://127.0.0.1:", 30s);
    REQUIRE(line);
    int port = std::stoi(line->substr(std::string("ui: http://127.0.0.1:").size()));
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(10, 0);
    CHECK(c.Get("/api/v1/instances")->status == 401);
    CHECK(c.Get("/")->status == 200);
    auto r = c.Get("/api/v1/instances/from-a-worker", {{"Authorization", "Bearer tok"}});
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(Json::parse(r->body)["output"] == 5);
    ui.signal(SIGTERM);
    CHECK(ui.wait(20s) == 0);

    // Usage errors: a missing file is not created, a bad --threads is refused.
    durable::test::Process missing(bin, {"--db", dir.file("none.db"), "ui", "--http", "127.0.0.1:0"}, {dir.file("m.err")});
    CHECK(missing.wait(20s) == 1);
    CHECK(!std::filesystem::exists(dir.file("none.db")));
    durable::test::Process threads(bin, {"--db", db, "ui", "--threads", "1"}, {dir.file("t.err")});
    CHECK(threads.wait(20s) == 2);
}

TEST_CASE("durable worker --http serves the dashboard beside /metrics") {
    durable::test::TempDir dir;
    const std::string bin = std::string(DURABLE_BIN_DIR) + "/durable";
    durable::test::Process worker(bin, {"--db", dir.file("w.db"), "worker", "--http", "127.0.0.1:0", "--log-level", "warn"},
                                  {dir.file("w.err")});
    auto line = worker.wait_for_prefix("http: listening on 127.0.0.1:", 30s);
    REQUIRE(line);
    int port = std::stoi(line->substr(std::string("http: listening on 127.0.0.1:").size()));
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(10, 0);
    CHECK(c.Get("/metrics")->status == 200);
    CHECK(c.Get("/")->status == 200);
    auto hosts = c.Get("/api/v1/hosts");
    REQUIRE(hosts);
    CHECK(hosts->status == 200);
    CHECK(Json::parse(hosts->body)["hosts"].size() == 1);
    worker.signal(SIGTERM);
    CHECK(worker.wait(20s) == 0);
}
