// `durable audit`: the audit log — who did what to which instance (client calls of the C++
// API and of `durable serve`'s RPCs, takeovers), oldest first.
#include <fmt/format.h>

#include "cli/common.hpp"

namespace durable::cli {
namespace {

struct AuditArgs {
    std::string instance;
    int limit = 50;
    bool json = false;
};

int run_audit(const GlobalOptions& g, const AuditArgs& a) {
    if (a.limit < 1) throw UsageError(fmt::format("--limit must be at least 1, got {}", a.limit));
    auto db = open_database(g, true, true);
    Client client(db);
    std::optional<std::string> instance;
    if (!a.instance.empty()) instance = a.instance;
    auto records = client.audit_log(instance, a.limit);
    if (a.json) {
        for (const auto& r : records) {
            Json line = {{"at", r.at_ms}, {"actor", r.actor}, {"action", r.action}};
            line["instance"] = r.instance_id ? Json(*r.instance_id) : Json();
            // A detail that is JSON (the sidecar's: correlation id, items, duration, outcome)
            // stays an object; free text stays a string.
            Json detail;
            if (r.detail) {
                detail = Json::parse(*r.detail, nullptr, false);
                if (detail.is_discarded() || !detail.is_object()) detail = *r.detail;
            }
            line["detail"] = detail;
            fmt::print("{}\n", line.dump());
        }
        return kExitOk;
    }
    fmt::print("{}  {}  {}  {}  {}\n", column("TIME", 23), column("ACTION", 26), column("INSTANCE", 36),
               column("ACTOR", 30), "DETAIL");
    for (const auto& r : records) {
        fmt::print("{}  {}  {}  {}  {}\n", column(format_time(r.at_ms), 23), column(r.action, 26),
                   column(r.instance_id.value_or("-"), 36), column(r.actor, 30), r.detail.value_or(""));
    }
    return kExitOk;
}

}  // namespace

void add_audit_command(CLI::App& app, GlobalOptions& g, Commands& commands) {
    auto a = std::make_shared<AuditArgs>();
    auto* sub = app.add_subcommand("audit", "Show the audit log: who did what to which instance, oldest first");
    sub->add_option("--instance", a->instance, "Only the records of this instance");
    sub->add_option("--limit", a->limit, "The newest N records")->capture_default_str();
    sub->add_flag("--json", a->json, "One JSON object per line");
    commands.add(sub, [&g, a] { return run_audit(g, *a); });
}

}  // namespace durable::cli
