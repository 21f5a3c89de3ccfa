// The subcommands that look at the hosts sharing a database: hosts (heartbeats and lease
// counts), leases (who holds which instance until when), metrics (instance counts and host
// liveness in Prometheus text), through the Client's read-only calls.
#include <fmt/format.h>
#include <map>

#include "cli/common.hpp"

namespace durable::cli {
namespace {

struct ClusterArgs {
    bool json = false;
    std::string stale_after = "30s";
};

std::string host_state(const HostInfo& h, std::int64_t now, std::int64_t stale_ms) {
    if (h.stopped_at_ms) return "stopped";
    return now - h.heartbeat_at_ms > stale_ms ? "silent" : "alive";
}

int run_hosts(const GlobalOptions& g, const ClusterArgs& a) {
    auto stale = parse_duration(a.stale_after, "--stale-after").count();
    Client client(open_database(g, true, true));
    auto hosts = client.hosts();
    auto now = now_ms();
    if (a.json) {
        Json out = Json::array();
        for (const auto& h : hosts) {
            out.push_back({{"id", h.id},
                           {"hostname", h.hostname},
                           {"pid", h.pid},
                           {"started_at_ms", h.started_at_ms},
                           {"heartbeat_at_ms", h.heartbeat_at_ms},
                           {"stopped_at_ms", h.stopped_at_ms ? Json(*h.stopped_at_ms) : Json()},
                           {"leases", h.leases},
                           {"orchestrations", h.orchestrations},
                           {"activities", h.activities},
                           {"lease_ms", h.lease_ms},
                           {"versions", h.versions},
                           {"state", host_state(h, now, stale)}});
        }
        fmt::print("{}\n", out.dump(2));
        return kExitOk;
    }
    fmt::print("{}  {}  {}  {}  {}  {}  {}\n", column("HOST", 28), column("STATE", 7), column("PID", 8),
               column("HOSTNAME", 16), column("STARTED", 23), column("HEARTBEAT", 12), "LEASES");
    auto names = [](const std::vector<std::string>& v) { return v.empty() ? std::string("-") : fmt::format("{}", fmt::join(v, ", ")); };
    for (const auto& h : hosts) {
        fmt::print("{}  {}  {}  {}  {}  {}  {}\n", column(h.id, 28), column(host_state(h, now, stale), 7),
                   column(std::to_string(h.pid), 8), column(h.hostname, 16), column(format_time(h.started_at_ms), 23),
                   column(format_relative(h.heartbeat_at_ms, now), 12), h.leases);
        // Who runs what: the names the host registers (it claims only these).
        std::vector<std::string> orchestrations;
        for (const auto& n : h.orchestrations) {
            // With the versions it runs, when they are named: "order (v1, v2)".
            std::vector<std::string> vs;
            if (auto it = h.versions.find(n); it != h.versions.end()) {
                for (const auto& v : it->second) {
                    if (!v.empty()) vs.push_back("v" + v);
                }
            }
            orchestrations.push_back(vs.empty() ? n : fmt::format("{} ({})", n, fmt::join(vs, ", ")));
        }
        fmt::print("    orchestrations: {}\n    activities:     {}\n", names(orchestrations), names(h.activities));
    }
    fmt::print(stderr, "{} host{} ('silent': no heartbeat for {})\n", hosts.size(), hosts.size() == 1 ? "" : "s",
               format_duration(stale));
    return kExitOk;
}

int run_leases(const GlobalOptions& g, const ClusterArgs& a) {
    Client client(open_database(g, true, true));
    auto now = now_ms();
    auto rows = client.leases();
    if (a.json) {
        Json out = Json::array();
        for (const auto& r : rows) {
            out.push_back({{"instance", r.instance_id},
                           {"name", r.name},
                           {"status", std::string(to_string(r.status))},
                           {"owner", r.owner},
                           {"expires_at_ms", r.expires_at_ms},
                           {"expired", r.expires_at_ms < now}});
        }
        fmt::print("{}\n", out.dump(2));
        return kExitOk;
    }
    fmt::print("{}  {}  {}  {}  {}\n", column("INSTANCE", 40), column("NAME", 16), column("STATUS", 10),
               column("OWNER", 28), "EXPIRES");
    std::size_t expired = 0;
    for (const auto& r : rows) {
        bool gone = r.expires_at_ms < now;
        expired += gone ? 1 : 0;
        std::string when = gone ? "expired " + format_relative(r.expires_at_ms, now) + " (claimable)"
                                : format_relative(r.expires_at_ms, now);
        fmt::print("{}  {}  {}  {}  {}\n", column(r.instance_id, 40), column(r.name, 16), column(to_string(r.status), 10),
                   column(r.owner, 28), when);
    }
    fmt::print(stderr, "{} lease{}, {} expired\n", rows.size(), rows.size() == 1 ? "" : "s", expired);
    return kExitOk;
}

int run_metrics(const GlobalOptions& g, const ClusterArgs& a) {
    auto stale = parse_duration(a.stale_after, "--stale-after").count();
    auto db = open_database(g, true, true);
    Client client(db);
    std::map<std::pair<std::string, std::string>, std::int64_t> counts;  // (name, status) -> n
    std::optional<std::string> after;
    do {
        auto page = client.query(QueryFilter{}, 5000, after);
        for (const auto& r : page.instances) ++counts[{r.name, std::string(to_string(r.status))}];
        after = page.next;
    } while (after);
    auto now = now_ms();
    // Names come from users: the writer escapes them, so none can end its label early.
    PrometheusWriter out;
    out.family("durable_instances", "Instances in the database by orchestration and status", "gauge");
    for (const auto& [key, n] : counts) {
        out.sample("durable_instances", {{"name", key.first}, {"status", key.second}}, n);
    }
    auto hosts = client.hosts();
    out.family("durable_host_up", "1 if the host's heartbeat is recent and it has not stopped", "gauge");
    for (const auto& h : hosts) {
        out.sample("durable_host_up", {{"host", h.id}}, std::int64_t{host_state(h, now, stale) == "alive" ? 1 : 0});
    }
    out.family("durable_host_leases", "Unexpired instance leases a host holds", "gauge");
    for (const auto& h : hosts) out.sample("durable_host_leases", {{"host", h.id}}, h.leases);
    auto st = db.stats();
    out.gauge("durable_wal_pages", "Pages in the WAL file", static_cast<double>(st.wal_pages));
    fmt::print("{}", out.text());
    return kExitOk;
}

}  // namespace

void add_cluster_commands(CLI::App& app, GlobalOptions& g, Commands& commands) {
    {
        auto a = std::make_shared<ClusterArgs>();
        auto* sub = app.add_subcommand(
            "hosts", "List the hosts that used this database: heartbeat, state, leases held, what each runs");
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
