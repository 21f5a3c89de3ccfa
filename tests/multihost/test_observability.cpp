// Observability across real processes: a real Prometheus scraping a worker's /metrics, an
// OTLP receiver getting one trace from two hosts with a takeover in the middle, /readyz of a
// stopped host and of a database gone missing, and `durable watch` following another
// process's commits (and reporting the gap when it falls behind the change feed).
#include <doctest/doctest.h>

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>

#include "cluster.hpp"
#include "orchestrations/orchestrations.hpp"
#include "runtime/database_access.hpp"

using namespace durable;
using namespace durable::test;
using namespace std::chrono_literals;

namespace {

const std::string kDurable = std::string(DURABLE_BIN_DIR) + "/durable";

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// A `durable worker` with its HTTP endpoint on a free loopback port.
struct HttpWorker {
    HttpWorker(const TempDir& dir, const std::string& db, const std::string& id, std::vector<std::string> extra = {})
        : process(kDurable, args(db, id, std::move(extra)), {dir.file(id + ".err")}) {
        auto line = process.wait_for_prefix("http: listening on ", 20s);
        if (!line) FAIL("worker " << id << " did not start its HTTP endpoint: " << read_text(dir.file(id + ".err")));
        port = std::stoi(line->substr(line->rfind(':') + 1));
    }
    ~HttpWorker() {
        process.signal(SIGCONT);
        process.signal(SIGTERM);
        process.wait(20s);
    }
    static std::vector<std::string> args(const std::string& db, const std::string& id, std::vector<std::string> extra) {
        std::vector<std::string> a = {"--db", db, "worker", "--host-id", id, "--lease", "1s", "--poll", "20ms",
                                      "--http", "127.0.0.1:0"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }
    httplib::Result get(const std::string& path, const httplib::Headers& headers = {}) const {
        httplib::Client c("127.0.0.1", port);
        c.set_connection_timeout(10s);
        c.set_read_timeout(30s);
        return c.Get(path, headers);
    }
    Process process;
    int port = 0;
};

int run_shell(const std::string& command) {
    Process p("/bin/sh", {"-c", command});
    auto f = read_to_end(p, 60s);
    return f.code.value_or(-1);
}

}  // namespace

TEST_CASE("a real Prometheus scrapes a worker's /metrics and reports the work it did") {
    TempDir dir;
    auto path = dir.file("prom.db");
    auto db = Database::open(path);
    Client client(db);
    HttpWorker worker(dir, path, "scraped");
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
        ids.push_back(client.schedule(orchestrations::kOrderPipeline, orchestrations::example_input(orchestrations::kOrderPipeline)));
    }
    for (const auto& id : ids) REQUIRE(is_terminal(client.wait_for_completion(id, 60s).status));
    std::int64_t finished = 0;
    for (auto st : {Status::Completed}) {
        auto page = client.query(QueryFilter{{st}, std::nullopt, std::nullopt, std::nullopt}, 1000);
        finished += static_cast<std::int64_t>(page.instances.size());
    }
    REQUIRE(finished >= 3);

    auto metrics = worker.get("/metrics");
    REQUIRE(metrics);
    REQUIRE(metrics->status == 200);
    std::ofstream(dir.file("metrics.txt")) << metrics->body;
    CHECK(run_shell("promtool check metrics < '" + dir.file("metrics.txt") + "'") == 0);

    int prom_port = free_port();
    std::ofstream(dir.file("prometheus.yml")) << fmt::format(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: durable\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        worker.port);
    Process prometheus("/usr/bin/prometheus",
                       {"--config.file=" + dir.file("prometheus.yml"), "--storage.tsdb.path=" + dir.file("tsdb"),
                        fmt::format("--web.listen-address=127.0.0.1:{}", prom_port)},
                       {dir.file("prometheus.err")});
    httplib::Client api("127.0.0.1", prom_port);
    api.set_connection_timeout(2s);
    api.set_read_timeout(10s);
    auto query = [&](const std::string& q) -> Json {
        auto res = api.Get("/api/v1/query", httplib::Params{{"query", q}}, httplib::Headers{});
        if (!res || res->status != 200) return Json();
        auto j = Json::parse(res->body, nullptr, false);
        if (j.is_discarded() || j.value("status", "") != "success") return Json();
        return j["data"]["result"];
    };
    auto value_of = [&](const std::string& q) -> std::optional<double> {
        auto r = query(q);
        if (!r.is_array() || r.empty()) return std::nullopt;
        return std::stod(r[0]["value"][1].get<std::string>());
    };
    bool scraped = wait_until([&] { return value_of("durable_instances_completed_total").has_value(); }, 60s, 200ms);
    if (!scraped) FAIL("Prometheus reported nothing; its log:\n" << read_text(dir.file("prometheus.err")));
    CHECK(value_of("up{job=\"durable\"}") == 1.0);
    CHECK(value_of("durable_instances_completed_total") == static_cast<double>(finished));
    auto host = query("durable_host_info");
    REQUIRE(host.is_array());
    REQUIRE(host.size() == 1);
    CHECK(host[0]["metric"]["host"] == "scraped");
    // Every activity the orchestrations ran, as counted by the worker itself.
    auto activities = value_of("durable_activities_total");
    REQUIRE(activities);
    CHECK(*activities >= 3 * 2);
    CHECK(value_of("durable_host_ready") == 1.0);
    prometheus.signal(SIGTERM);
    prometheus.wait(20s);
}

TEST_CASE("an OTLP receiver gets one trace with correct parents from two hosts and a takeover") {
    std::mutex mu;
    std::vector<Json> spans;  // guarded by mu
    Json resource;            // guarded by mu
    httplib::Server receiver;
    receiver.Post("/v1/traces", [&](const httplib::Request& req, httplib::Response& res) {
        auto body = Json::parse(req.body, nullptr, false);
        if (body.is_discarded() || req.get_header_value("Content-Type") != "application/json") {
            res.status = 400;
            return;
        }
        std::lock_guard lock(mu);
        for (auto& rs : body["resourceSpans"]) {
            resource = rs["resource"];
            for (auto& ss : rs["scopeSpans"]) {
                for (auto& s : ss["spans"]) spans.push_back(s);
            }
        }
        res.set_content("{}", "application/json");
    });
    int port = receiver.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    std::thread serving([&] { receiver.listen_after_bind(); });
    struct Stop {
        httplib::Server& s;
        std::thread& t;
        ~Stop() {
            s.stop();
            t.join();
        }
    } stop{receiver, serving};

    auto attr = [](const Json& span, const std::string& key) -> Json {
        for (const auto& a : span["attributes"]) {
            if (a["key"] == key) return a["value"];
        }
        return Json();
    };
    auto named = [&](const std::string& name) {
        std::vector<Json> out;
        std::lock_guard lock(mu);
        for (const auto& s : spans) {
            if (s["name"] == name) out.push_back(s);
        }
        return out;
    };

    Cluster cluster;
    HostConfig config;
    config.lease_ms = 1000;
    config.env = {fmt::format("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{}", port), "OTEL_BSP_SCHEDULE_DELAY=50",
                  "OTEL_SERVICE_NAME=durable-test", "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=ci"};
    cluster.start_host("a", config);
    const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736", caller = "00f067aa0ba902b7";
    ScheduleOptions so;
    so.traceparent = "00-" + trace + "-" + caller + "-01";
    auto id = cluster.client.schedule("traced", Json{{"ms", 3000}}, so);
    // Host a ran the sub-orchestration and its retried activity, and has started "long".
    REQUIRE(wait_until([&] {
        for (const auto& r : cluster.activity_log()) {
            if (r.instance == id && r.host == "a" && r.phase == "start") return true;
        }
        return false;
    }, 30s));
    REQUIRE(wait_until([&] { return !named("orchestration:traced_child").empty(); }, 30s));
    cluster.start_host("b", config);
    cluster.host("a").kill();  // mid-activity: b takes the instance over when the lease expires
    auto done = cluster.client.wait_for_completion(id, 60s);
    REQUIRE(done.status == Status::Completed);
    REQUIRE(wait_until([&] { return !named("orchestration:traced").empty(); }, 30s));

    std::lock_guard lock(mu);
    std::set<std::string> ids = {caller};
    for (const auto& s : spans) ids.insert(s["spanId"].get<std::string>());
    std::set<std::string> hosts;
    for (const auto& s : spans) {
        CHECK(s["traceId"] == trace);
        REQUIRE(s.contains("parentSpanId"));
        CHECK_MESSAGE(ids.count(s["parentSpanId"].get<std::string>()) == 1, "span " << s["name"] << " has an unknown parent");
        auto h = attr(s, "durable.host.id");
        if (h.is_object()) hosts.insert(h["stringValue"].get<std::string>());
    }
    CHECK(hosts == std::set<std::string>{"a", "b"});  // both hosts' spans are in the one trace
    auto find = [&](const std::string& name) {
        std::vector<Json> out;
        for (const auto& s : spans) {
            if (s["name"] == name) out.push_back(s);
        }
        return out;
    };
    auto orch = find("orchestration:traced");
    REQUIRE(orch.size() == 1);
    CHECK(orch[0]["parentSpanId"] == caller);
    CHECK(orch[0]["kind"] == 2);
    auto child = find("orchestration:traced_child");
    REQUIRE(child.size() == 1);
    CHECK(child[0]["parentSpanId"] == orch[0]["spanId"]);
    for (const auto& ep : find("episode:traced")) CHECK(ep["parentSpanId"] == orch[0]["spanId"]);
    for (const auto& ep : find("episode:traced_child")) CHECK(ep["parentSpanId"] == child[0]["spanId"]);
    auto flaky = find("activity:flaky");
    REQUIRE(flaky.size() == 1);
    CHECK(flaky[0]["parentSpanId"] == child[0]["spanId"]);
    CHECK(attr(flaky[0], "durable.activity.attempts")["intValue"] == "2");
    auto attempts = find("activity:flaky attempt");
    REQUIRE(attempts.size() == 2);
    int failed_attempts = 0;
    for (const auto& a : attempts) {
        CHECK(a["parentSpanId"] == flaky[0]["spanId"]);
        if (a["status"]["code"] == 2) {
            ++failed_attempts;
            CHECK(attr(a, "durable.attempt")["intValue"] == "1");
            CHECK(attr(a, "error.type").is_object());
        }
    }
    CHECK(failed_attempts == 1);
    auto retries = find("activity:flaky retry");
    REQUIRE(retries.size() == 1);
    CHECK(retries[0]["parentSpanId"] == flaky[0]["spanId"]);
    auto longs = find("activity:long");
    REQUIRE(!longs.empty());  // b's run (a was killed inside its own)
    for (const auto& l : longs) CHECK(l["parentSpanId"] == orch[0]["spanId"]);
    CHECK(attr(longs.back(), "durable.host.id")["stringValue"] == "b");
    bool named_service = false, env = false;
    for (const auto& a : resource["attributes"]) {
        named_service = named_service || (a["key"] == "service.name" && a["value"]["stringValue"] == "durable-test");
        env = env || (a["key"] == "deployment.environment" && a["value"]["stringValue"] == "ci");
    }
    CHECK(named_service);
    CHECK(env);
}

TEST_CASE("/readyz: unready when the host was stopped past its lease, or its database file is gone, and the token is enforced") {
    TempDir dir;
    auto path = dir.file("ready.db");
    Database::open(path);
    std::ofstream(dir.file("token")) << "t0ken-123\n";
    HttpWorker worker(dir, path, "probed", {"--http-token-file", dir.file("token")});
    httplib::Headers auth = {{"Authorization", "Bearer t0ken-123"}};
    CHECK(worker.get("/readyz")->status == 401);
    CHECK(worker.get("/readyz", {{"Authorization", "Bearer nope"}})->status == 401);
    CHECK(worker.get("/healthz")->status == 401);
    REQUIRE(wait_until([&] { return worker.get("/readyz", auth)->status == 200; }, 20s, 50ms));

    // Stopped past its lease: the request waits in the listen queue, and is answered after
    // SIGCONT, when the renewer has not yet renewed or has noticed that it woke too late.
    REQUIRE(worker.process.pause());
    std::this_thread::sleep_for(1500ms);  // the 1 s lease runs out while the host is stopped
    auto pending = std::async(std::launch::async, [&] { return worker.get("/readyz", auth); });
    std::this_thread::sleep_for(200ms);
    worker.process.resume();
    auto stale = pending.get();
    REQUIRE(stale);
    CHECK(stale->status == 503);
    CHECK_MESSAGE((stale->body.find("renewal") != std::string::npos || stale->body.find("fenced") != std::string::npos),
                  stale->body);
    CHECK(wait_until([&] { return worker.get("/readyz", auth)->status == 200; }, 20s, 50ms));

    // The file goes away under the running host: its open connections still work, a new one
    // cannot open it.
    std::filesystem::rename(path, path + ".away");
    auto gone = worker.get("/readyz", auth);
    CHECK(gone->status == 503);
    CHECK(gone->body.find("database") != std::string::npos);
    std::filesystem::rename(path + ".away", path);
    CHECK(wait_until([&] { return worker.get("/readyz", auth)->status == 200; }, 20s, 50ms));
    CHECK(worker.get("/healthz", auth)->body == "ok\n");
}

TEST_CASE("/readyz reports a PostgreSQL outage: 503 with the reason while the server is down, 200 once it is back") {
    TempDir dir;
    durable::test::OwnPostgresKind pg;  // a private server: this test stops it
    Database::open(pg.target());        // migrated before the worker starts
    HttpWorker worker(dir, pg.target(), "pg-probed");
    REQUIRE(wait_until([&] { return worker.get("/readyz")->status == 200; }, 30s, 50ms));

    pg.server.stop();
    std::string down;
    REQUIRE(wait_until(
        [&] {
            auto r = worker.get("/readyz");
            if (!r || r->status != 503) return false;
            down = r->body;
            return true;
        },
        30s, 50ms));
    MESSAGE("while PostgreSQL is down: " << down);
    CHECK(down.find("database") != std::string::npos);
    CHECK(down.find("PostgreSQL") != std::string::npos);
    CHECK(worker.get("/healthz")->status == 200);  // alive all along

    pg.server.start();
    CHECK(wait_until(
        [&] {
            auto r = worker.get("/readyz");
            return r && r->status == 200;
        },
        60s, 100ms));
    // And the worker works again.
    Client client(Database::open(pg.target()));
    auto id = client.schedule(orchestrations::kOrderPipeline, orchestrations::example_input(orchestrations::kOrderPipeline));
    CHECK(client.wait_for_completion(id, 60s).status == Status::Completed);
}

TEST_CASE("durable watch sees a worker's commits in order, and reports a gap when it falls behind the feed") {
    TempDir dir;
    auto path = dir.file("watch.db");
    auto db = Database::open(path);
    Client client(db);
    auto worker = std::make_unique<Process>(
        kDurable, std::vector<std::string>{"--db", path, "worker", "--host-id", "w", "--lease", "2s", "--poll", "20ms"},
        ProcessOptions{dir.file("w.err")});
    Process watcher(kDurable, {"--db", path, "watch", "--json"}, {dir.file("watch.err")});
    REQUIRE(wait_until([&] { return read_text(dir.file("watch.err")).find("watching") != std::string::npos; }, 20s));

    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
        ids.push_back(client.schedule(orchestrations::kOrderPipeline, orchestrations::example_input(orchestrations::kOrderPipeline)));
    }
    std::map<std::string, std::vector<std::int64_t>> seqs;
    std::set<std::string> finished;
    std::uint64_t last_offset = 0;
    bool in_order = true;
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (finished.size() < ids.size() && std::chrono::steady_clock::now() < deadline) {
        auto line = watcher.read_line(1s);
        if (!line) continue;
        auto j = Json::parse(*line);
        REQUIRE_FALSE(j.contains("gap"));
        auto offset = j["offset"].get<std::uint64_t>();
        in_order = in_order && offset > last_offset;
        last_offset = offset;
        seqs[j["instance"]].push_back(j["seq"].get<std::int64_t>());
        if (j["event"]["t"] == "ExecutionCompleted" && std::find(ids.begin(), ids.end(), j["instance"]) != ids.end()) {
            finished.insert(j["instance"].get<std::string>());
        }
    }
    REQUIRE(finished.size() == ids.size());
    CHECK(in_order);
    for (const auto& id : ids) {
        const auto& s = seqs[id];
        CHECK(s.size() == client.history(id).size());
        for (std::size_t i = 0; i < s.size(); ++i) CHECK(s[i] == static_cast<std::int64_t>(i));
    }

    // Behind the feed: the watcher is stopped while another process commits and prunes the
    // feed (it keeps 2 rows) past everything the watcher had read.
    worker->signal(SIGTERM);
    worker->wait(20s);
    worker.reset();
    REQUIRE(watcher.pause());
    std::int64_t head = detail::store_of(db)->change_feed_head();
    {
        DatabaseOptions small;
        small.feed_max_rows = 2;
        auto pruning = Database::open(path, small);
        HostOptions ho;
        ho.lease_duration = 2s;
        Host host(pruning, orchestrations::make_registry(), ho);
        host.start();
        auto c = host.client();
        REQUIRE(wait_until([&] {
            auto id = c.schedule(orchestrations::kOrderPipeline, orchestrations::example_input(orchestrations::kOrderPipeline));
            c.wait_for_completion(id, 30s);
            auto first = detail::store_of(pruning)->read_changes(0, 1);
            return !first.empty() && first.front().seq > head + 1;
        }, 60s, 50ms));
        host.stop();
    }
    watcher.resume();
    std::optional<Json> gap;
    deadline = std::chrono::steady_clock::now() + 30s;
    while (!gap && std::chrono::steady_clock::now() < deadline) {
        auto line = watcher.read_line(1s);
        if (!line) continue;
        auto j = Json::parse(*line);
        if (j.contains("gap")) gap = j["gap"];
    }
    REQUIRE(gap);
    CHECK((*gap)["reason"].get<std::string>().find("pruned") != std::string::npos);
    CHECK((*gap)["to_offset"].get<std::uint64_t>() >= (*gap)["from_offset"].get<std::uint64_t>());
    watcher.signal(SIGTERM);
    CHECK(watcher.wait(20s) == 0);
}
