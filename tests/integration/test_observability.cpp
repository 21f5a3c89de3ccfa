// The observability surfaces in one process: `durable metrics` and `durable audit`, the change
// feed and its follower, host readiness, the HTTP server's routes and token, OTLP encoding.
#include <doctest/doctest.h>

#include <httplib.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <durable/durable.hpp>
#include <durable/http.hpp>
#include <durable/otlp.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "orchestrations/orchestrations.hpp"
#include "runtime/database_access.hpp"
#include "store/store.hpp"
#include "support/engine_fixture.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

using namespace durable;
using namespace std::chrono_literals;
using durable::test::Process;
using durable::test::TempDir;

namespace {

const std::string kDurable = std::string(DURABLE_BIN_DIR) + "/durable";

durable::test::Finished run(const TempDir& dir, const std::vector<std::string>& args) {
    static int n = 0;
    Process p(args.front(), std::vector<std::string>(args.begin() + 1, args.end()),
              {dir.file("err-" + std::to_string(++n))});
    auto f = durable::test::read_to_end(p, 60s);
    REQUIRE(f.code.has_value());
    return f;
}

Task<int> twice(OrchestrationContext& ctx, int n) {
    int a = co_await ctx.call_activity<int>("inc", n);
    co_return co_await ctx.call_activity<int>("inc", a);
}

std::shared_ptr<Registry> small_registry() {
    auto r = std::make_shared<Registry>();
    r->add_orchestrator("twice", twice);
    r->add_activity("inc", [](ActivityContext&, int n) { return n + 1; });
    return r;
}

}  // namespace

TEST_CASE("durable metrics escapes orchestration names: a crafted name cannot forge a series") {
    TempDir dir;
    auto path = dir.file("m.db");
    {
        auto db = Database::open(path);
        Client c(db);
        c.schedule("evil\"} 1\nforged_series{x=\"y\"} 42\n#", Json());
        c.schedule("plain", Json());
    }
    auto f = run(dir, {kDurable, "--db", path, "metrics"});
    REQUIRE(*f.code == 0);
    std::string text;
    int instance_series = 0;
    for (const auto& l : f.lines) {
        text += l + "\n";
        CHECK(l.rfind("forged_series", 0) != 0);
        if (l.rfind("durable_instances{", 0) == 0) ++instance_series;
    }
    CHECK(instance_series == 2);
    CHECK(text.find("durable_instances{name=\"evil\\\"} 1\\nforged_series{x=\\\"y\\\"} 42\\n#\",status=\"Pending\"} 1") !=
          std::string::npos);
    std::ofstream(dir.file("metrics.txt")) << text;
    auto check = run(dir, {"/bin/sh", "-c", "promtool check metrics < '" + dir.file("metrics.txt") + "'"});
    CHECK(*check.code == 0);
}

TEST_CASE("each commit that appends history adds one change-feed row and pruning keeps the newest") {
    DatabaseOptions dbo;
    dbo.feed_max_rows = 3;
    dbo.feed_max_age = std::chrono::hours(1);
    TempDir dir;
    auto path = dir.file("feed.db");
    auto db = Database::open(path, dbo);
    HostOptions ho;
    ho.commit_linger = std::chrono::microseconds(0);  // one commit per episode
    ho.lease_duration = 1s;
    Host host(db, small_registry(), ho);
    host.start();
    auto c = host.client();
    auto id = c.schedule("twice", 1);
    REQUIRE(c.wait_for_completion(id, 10s).status == Status::Completed);
    auto rows = detail::store_of(db)->read_changes(0, 100);
    REQUIRE(!rows.empty());
    std::int64_t events = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        CHECK(rows[i].instance_id == id);
        CHECK(rows[i].name == "twice");
        if (i > 0) CHECK(rows[i].seq == rows[i - 1].seq + 1);
        CHECK(rows[i].first_seq == events);
        events += rows[i].count;
    }
    CHECK(events == static_cast<std::int64_t>(c.history(id).size()));
    CHECK(rows.back().status == Status::Completed);
    std::int64_t head = detail::store_of(db)->change_feed_head();
    CHECK(head == rows.back().seq);
    // More commits, until a prune (about once a second) has run past them: the count bound
    // leaves at most 3 rows plus what came after the last prune, never the newest row removed.
    bool pruned = false;
    for (int i = 0; i < 200 && !pruned; ++i) {
        auto more = c.schedule("twice", i);
        REQUIRE(c.wait_for_completion(more, 10s).status == Status::Completed);
        auto all = detail::store_of(db)->read_changes(0, 100'000);
        pruned = !all.empty() && all.front().seq > head;
        if (!pruned) std::this_thread::sleep_for(20ms);
    }
    REQUIRE(pruned);
    auto all = detail::store_of(db)->read_changes(0, 100'000);
    CHECK(all.back().seq == detail::store_of(db)->change_feed_head());
    for (std::size_t i = 1; i < all.size(); ++i) CHECK(all[i].seq == all[i - 1].seq + 1);
    host.stop();
}

TEST_CASE("the process's event distributor carries committed events with their name and status") {
    durable::test::Engine e(small_registry());
    auto sub = e.db.events()->subscribe({});
    auto c = e.client();
    auto id = c.schedule("twice", 5);
    REQUIRE(c.wait_for_completion(id, 10s).status == Status::Completed);
    std::vector<std::shared_ptr<const WatchEvent>> got;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
        auto item = sub->next(100ms);
        if (!item) continue;
        auto* ev = std::get_if<std::shared_ptr<const WatchEvent>>(&*item);
        REQUIRE(ev);
        got.push_back(*ev);
        if ((*ev)->event.value("t", "") == "ExecutionCompleted") break;
    }
    REQUIRE(!got.empty());
    CHECK(got.back()->event.value("t", "") == "ExecutionCompleted");
    CHECK(got.back()->status == "Completed");
    for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i]->instance_id == id);
        CHECK(got[i]->name == "twice");
        CHECK(got[i]->seq == static_cast<std::int64_t>(i));
        if (i > 0) CHECK(got[i]->offset > got[i - 1]->offset);
    }
    CHECK(e.db.change_feed_stats().running);
    CHECK(e.host->metrics_text().find("durable_change_feed_rows_total") != std::string::npos);
}

TEST_CASE("durable audit lists who did what, oldest first, per instance with --instance") {
    TempDir dir;
    auto path = dir.file("audit.db");
    std::string a, b;
    {
        auto db = Database::open(path);
        Client c(db);
        a = c.schedule("twice", 1);
        b = c.schedule("twice", 2);
        c.terminate(a, "no longer needed");
    }
    auto all = run(dir, {kDurable, "--db", path, "audit", "--json"});
    REQUIRE(*all.code == 0);
    std::string text;
    for (const auto& l : all.lines) text += l + "\n";
    auto entries = Json::parse(text);
    REQUIRE(entries.size() == 3);
    CHECK(entries[0]["action"] == "schedule");
    CHECK(entries[0]["instance"] == a);
    CHECK(entries[1]["instance"] == b);
    CHECK(entries[2]["action"] == "terminate");
    auto one = run(dir, {kDurable, "--db", path, "audit", "--instance", b, "--json"});
    text.clear();
    for (const auto& l : one.lines) text += l + "\n";
    auto just_b = Json::parse(text);
    REQUIRE(just_b.size() == 1);
    CHECK(just_b[0]["instance"] == b);
    auto limited = run(dir, {kDurable, "--db", path, "audit", "--limit", "1"});
    CHECK(*limited.code == 0);
    CHECK(limited.lines.size() == 2);  // header + the newest entry
    CHECK(limited.lines.back().find("terminate") != std::string::npos);
}

TEST_CASE("readiness: ready while running, and a database file that went away makes the host unready") {
    durable::test::Engine e(small_registry());
    CHECK(e.host->readiness().ready);
    std::filesystem::rename(e.path, e.path + ".moved");
    auto r = e.host->readiness();
    CHECK_FALSE(r.ready);
    REQUIRE(!r.problems.empty());
    CHECK(r.problems.front().find("database") != std::string::npos);
    std::filesystem::rename(e.path + ".moved", e.path);
    CHECK(e.host->readiness().ready);
}

TEST_CASE("the HTTP server enforces its token, routes by exact path and prefix, and serves host routes") {
    durable::test::Engine e(small_registry());
    http::HttpOptions o;
    o.listen = "127.0.0.1:0";
    o.bearer_token = "s3cret";
    http::HttpServer server(o);
    http::add_host_routes(server, *e.host);
    server.route("GET", "/api/v1/", [](const http::Request& req, http::Response& res) {
        res.content_type = "application/json";
        res.body = Json{{"path", req.path}, {"q", req.query.count("q") ? req.query.at("q") : ""}}.dump();
    });
    server.start();
    httplib::Client cli("127.0.0.1", server.port());
    CHECK(cli.Get("/metrics")->status == 401);
    CHECK(cli.Get("/healthz", {{"Authorization", "Bearer wrong"}})->status == 401);
    httplib::Headers auth = {{"Authorization", "Bearer s3cret"}};
    auto health = cli.Get("/healthz", auth);
    CHECK(health->status == 200);
    CHECK(health->body == "ok\n");
    auto ready = cli.Get("/readyz", auth);
    CHECK(ready->status == 200);
    auto metrics = cli.Get("/metrics", auth);
    CHECK(metrics->status == 200);
    CHECK(metrics->get_header_value("Content-Type").find("version=0.0.4") != std::string::npos);
    CHECK(metrics->body.find("durable_host_info{host=\"" + e.host->id() + "\"} 1") != std::string::npos);
    auto api = cli.Get("/api/v1/instances?q=7", auth);
    REQUIRE(api->status == 200);
    CHECK(Json::parse(api->body)["path"] == "/api/v1/instances");
    CHECK(Json::parse(api->body)["q"] == "7");
    CHECK(cli.Get("/nothing", auth)->status == 404);
    CHECK(cli.Post("/metrics", auth, "", "text/plain")->status == 405);
    server.stop();
}

TEST_CASE("OTLP/JSON encoding: hex ids, kinds, int64 as strings, error status, resource attributes") {
    http::OtlpOptions o;
    o.traces_url = "http://127.0.0.1:1/v1/traces";
    o.service_name = "svc";
    o.resource_attributes = {{"deployment.environment", "test"}};
    Span s;
    s.name = "activity:charge";
    s.trace_id = "0af7651916cd43dd8448eb211c80319c";
    s.span_id = "b7ad6b7169203331";
    s.parent_span_id = "00f067aa0ba902b7";
    s.kind = SpanKind::Server;
    s.start_unix_ns = 1'000;
    s.end_unix_ns = 2'000;
    s.ok = false;
    s.detail = "boom";
    s.attributes = {{"durabletask.task.task_id", std::int64_t{4}}, {"error.type", std::string("Timeout")}};
    auto body = Json::parse(http::OtlpExporter::encode(o, {s}));
    auto& rs = body["resourceSpans"][0];
    CHECK(rs["resource"]["attributes"][0]["key"] == "service.name");
    CHECK(rs["resource"]["attributes"][0]["value"]["stringValue"] == "svc");
    auto& span = rs["scopeSpans"][0]["spans"][0];
    CHECK(span["traceId"] == s.trace_id);
    CHECK(span["parentSpanId"] == s.parent_span_id);
    CHECK(span["kind"] == 2);
    CHECK(span["startTimeUnixNano"] == "1000");
    CHECK(span["status"]["code"] == 2);
    CHECK(span["attributes"][0]["value"]["intValue"] == "4");
}

TEST_CASE("W3C traceparent: parsed and validated, and a client call with one puts the instance in its trace") {
    auto tc = TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    REQUIRE(tc);
    CHECK(tc->trace_id == "0af7651916cd43dd8448eb211c80319c");
    CHECK(tc->sampled);
    CHECK(tc->traceparent() == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    CHECK_FALSE(TraceContext::parse("00-00000000000000000000000000000000-b7ad6b7169203331-01"));
    CHECK_FALSE(TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"));
    CHECK_FALSE(TraceContext::parse("zz-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));

    auto spans = std::make_shared<std::vector<Span>>();
    auto mu = std::make_shared<std::mutex>();
    HostOptions ho;
    ho.span_sink = [spans, mu](const Span& s) {
        std::lock_guard lock(*mu);
        spans->push_back(s);
    };
    durable::test::Engine e(small_registry(), ho);
    auto c = e.client();
    ScheduleOptions so;
    so.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    auto id = c.schedule("twice", 1, so);
    REQUIRE(c.wait_for_completion(id, 10s).status == Status::Completed);
    so.traceparent = "not-a-traceparent";
    CHECK_THROWS_AS(c.schedule("twice", 1, so), InvalidInput);
    CHECK(detail::store_of(e.db)->get_instance(id)->trace_parent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    std::lock_guard lock(*mu);
    std::string orch_span;
    for (const auto& s : *spans) {
        CHECK(s.trace_id == "0af7651916cd43dd8448eb211c80319c");
        if (s.name == "orchestration:twice") {
            orch_span = s.span_id;
            CHECK(s.parent_span_id == "b7ad6b7169203331");
        }
    }
    REQUIRE(!orch_span.empty());
    for (const auto& s : *spans) {
        if (s.name == "episode:twice" || s.name == "activity:inc") CHECK(s.parent_span_id == orch_span);
    }
}
