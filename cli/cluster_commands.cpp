// The subcommands that look at the hosts sharing a database: hosts (heartbeats and lease
// counts), leases (who holds which instance until when), metrics (instance counts and host
// liveness in Prometheus text). They read the store directly: hosts and leases are not part
// of the Client API.
#include <fmt/format.h>
#include <map>

#include "cli/common.hpp"
#include "store/store.hpp"

namespace durable::cli {
namespace {

struct ClusterArgs {
    bool json = false;
    std::string stale_after = "30s";
};

std::string host_state(const store::HostRow& h, std::int64_t now, std::int64_t stale_ms) {
    if (h.stopped_at) return "stopped";
    return now - h.heartbeat_at > stale_ms ? "silent" : "alive";
}

int run_hosts(const GlobalOptions& g, const ClusterArgs& a) {
    auto stale = parse_duration(a.stale_after, "--stale-after").count();
    auto db = open_database(g, true, true);
    auto hosts = db.store()->list_hosts();
    auto now = now_ms();
    if (a.json) {
        Json out = Json::array();
        for (const auto& h : hosts) {
            out.push_back({{"id", h.id},
                           {"hostname", h.hostname},
                           {"pid", h.pid},
                           {"started_at_ms", h.started_at},
                           {"heartbeat_at_ms", h.heartbeat_at},
                           {"stopped_at_ms", h.stopped_at ? Json(*h.stopped_at) : Json()},
                           {"leases", h.leases},
                           {"state", host_state(h, now, stale)}});
        }
        fmt::print("{}\n", out.dump(2));
        return kExitOk;
    }
    fmt::print("{}  {}  {}  {}  {}  {}  {}\n", column("HOST", 28), column("STATE", 7), column("PID", 8),
               column("HOSTNAME", 16), column("STARTED", 23), column("HEARTBEAT", 12), "LEASES");
    for (const auto& h : hosts) {
        fmt::print("{}  {}  {}  {}  {}  {}  {}\n", column(h.id, 28), column(host_state(h, now, stale), 7),
                   column(std::to_string(h.pid), 8), column(h.hostname, 16), column(format_time(h.started_at), 23),
                   column(format_relative(h.heartbeat_at, now), 12), h.leases);
    }
    fmt::print(stderr, "{} host{} ('silent': no heartbeat for {})\n", hosts.size(), hosts.size() == 1 ? "" : "s",
               format_duration(stale));
    return kExitOk;
}

int run_leases(const GlobalOptions& g, const ClusterArgs& a) {
    auto db = open_database(g, true, true);
    auto now = now_ms();
    auto rows = db.store()->list_leases(now);
    if (a.json) {
        Json out = Json::array();
        for (const auto& r : rows) {
            out.push_back({{"instance", r.id},
                           {"name", r.name},
                           {"status", std::string(to_string(r.status))},
                           {"owner", r.lease_owner ? *r.lease_owner : ""},
                           {"expires_at_ms", r.lease_expires_at},
                           {"expired", r.lease_expires_at < now}});
        }
        fmt::print("{}\n", out.dump(2));
        return kExitOk;
    }
    fmt::print("{}  {}  {}  {}  {}\n", column("INSTANCE", 40), column("NAME", 16), column("STATUS", 10),
               column("OWNER", 28), "EXPIRES");
    std::size_t expired = 0;
    for (const auto& r : rows) {
        bool gone = r.lease_expires_at < now;
        expired += gone ? 1 : 0;
        std::string when = gone ? "expired " + format_relative(r.lease_expires_at, now) + " (claimable)"
                                : format_relative(r.lease_expires_at, now);
        fmt::print("{}  {}  {}  {}  {}\n", column(r.id, 40), column(r.name, 16), column(to_string(r.status), 10),
                   column(r.lease_owner ? *r.lease_owner : "", 28), when);
    }
    fmt::print(stderr, "{} lease{}, {} expired\n", rows.size(), rows.size() == 1 ? "" : "s", expired);
    return kExitOk;
}

int run_metrics(const GlobalOptions& g, const ClusterArgs& a) {
    auto stale = parse_duration(a.stale_after, "--stale-after").count();
    auto db = open_database(g, true, true);
    auto store = db.store();
    std::map<std::pair<std::string, std::string>, std::int64_t> counts;  // (name, status) -> n
    store::InstanceFilter f;
    f.limit = 5000;
    for (;;) {
        auto rows = store->query_instances(f);
        for (const auto& r : rows) ++counts[{r.name, std::string(to_string(r.status))}];
        if (static_cast<int>(rows.size()) < f.limit) break;
        f.after_id = rows.back().id;
    }
    auto now = now_ms();
    // Names come from users: the writer escapes them, so none can end its label early.
    PrometheusWriter out;
    out.family("durable_instances", "Instances in the database by orchestration and status", "gauge");
    for (const auto& [key, n] : counts) {
        out.sample("durable_instances", {{"name", key.first}, {"status", key.second}}, n);
    }
    auto hosts = store->list_hosts();
    out.family("durable_host_up", "1 if the host's heartbeat is recent and it has not stopped", "gauge");
    for (const auto& h : hosts) {
        out.sample("durable_host_up", {{"host", h.id}}, std::int64_t{host_state(h, now, stale) == "alive" ? 1 : 0});
    }
    out.family("durable_host_leases", "Unexpired instance leases a host holds", "gauge");
    for (const auto& h : hosts) out.sample("durable_host_leases", {{"host", h.id}}, h.leases);
    auto st = store->stats();
    out.gauge("durable_wal_pages", "Pages in the WAL file", static_cast<double>(st.wal_pages));
    fmt::print("{}", out.text());
    return kExitOk;
}

}  // namespace

void add_cluster_commands(CLI::App& app, GlobalOptions& g, Commands& commands) {
    {
        auto a = std::make_shared<ClusterArgs>();
        auto* sub = app.add_subcommand("hosts", "List the hosts that used this database: heartbeat, state, leases held");
        sub->add_flag("--json", a->json, "Print as JSON");
        sub->add_option("--stale-after", a->stale_after, "A heartbeat older than this marks the host 'silent'")
            ->capture_default_str();
        commands.add(sub, [&g, a] { return run_hosts(g, *a); });
    }
    {
        auto a = std::make_shared<ClusterArgs>();
        auto* sub = app.add_subcommand("leases", "List held instance leases, their owners and expiry");
        sub->add_flag("--json", a->json, "Print as JSON");
        commands.add(sub, [&g, a] { return run_leases(g, *a); });
    }
    {
        auto a = std::make_shared<ClusterArgs>();
        auto* sub = app.add_subcommand("metrics", "Print instance counts and host liveness in Prometheus text format");
        sub->add_option("--stale-after", a->stale_after, "A heartbeat older than this marks the host down")
            ->capture_default_str();
        commands.add(sub, [&g, a] { return run_metrics(g, *a); });
    }
}

}  // namespace durable::cli
