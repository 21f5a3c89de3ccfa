// approval — human interaction: an orchestration that waits for someone to approve, with a
// durable timeout that escalates. The decision comes from outside, e.g. the command line:
//
//   ./approval [--db FILE] [--timeout-ms N] [--auto-approve]
//
// It starts a host with the `approval` orchestration (orchestrations/approval.hpp), schedules
// a request and prints the command that decides it, for instance:
//
//   durable --db approval.db raise approval-1234 approved --data '{"by":"you"}'
//
// then waits for the outcome. --auto-approve raises the event itself once the request is
// waiting (what the test does). With no decision, the request escalates after --timeout-ms and
// expires after as long again.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <durable/durable.hpp>

#include "orchestrations/orchestrations.hpp"

using namespace std::chrono_literals;
namespace o = durable::orchestrations;

namespace {

struct Args {
    std::string db = "approval.db";
    long timeout_ms = 120'000;
    bool auto_approve = false;
};

bool parse(int argc, char** argv, Args& a) {
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--db" && i + 1 < argc) {
            a.db = argv[++i];
        } else if (arg == "--timeout-ms" && i + 1 < argc) {
            a.timeout_ms = std::atol(argv[++i]);
        } else if (arg == "--auto-approve") {
            a.auto_approve = true;
        } else {
            std::fprintf(stderr, "usage: approval [--db FILE] [--timeout-ms N] [--auto-approve]\n");
            return false;
        }
    }
    return a.timeout_ms > 0;
}

// Waits (bounded) until the approval says it is waiting for a decision.
bool wait_until_waiting(durable::Client& client, const std::string& id, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        auto s = client.get_status(id);
        if (s && s->custom_status.is_object() && s->custom_status.value("stage", "") == "waiting") return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    Args args;
    if (!parse(argc, argv, args)) return 2;
    try {
        auto db = durable::Database::open(args.db);
        auto registry = std::make_shared<durable::Registry>();
        o::register_approval(*registry);
        durable::Host host(db, registry);
        host.start();
        auto client = host.client();

        o::ApprovalRequest request;
        request.request_id = "approval-" + std::to_string(getpid());
        request.requester = "ada";
        request.amount = 1250;
        request.timeout_ms = args.timeout_ms;
        request.escalation_timeout_ms = args.timeout_ms;
        durable::ScheduleOptions options;
        options.instance_id = request.request_id;
        auto id = client.schedule(o::kApproval, request, options);

        std::printf("approval %s is waiting for a decision (escalates after %ld ms). Decide it with:\n", id.c_str(),
                    args.timeout_ms);
        std::printf("  durable --db %s raise %s approved --data '{\"by\":\"you\"}'\n", args.db.c_str(), id.c_str());
        std::printf("  durable --db %s raise %s rejected --data '{\"by\":\"you\",\"comment\":\"no\"}'\n",
                    args.db.c_str(), id.c_str());
        std::fflush(stdout);

        if (args.auto_approve) {
            // As `durable raise` would: a separate, standalone client on the same file.
            durable::Client outsider(durable::Database::open(args.db));
            if (!wait_until_waiting(outsider, id, 30s)) {
                std::fprintf(stderr, "approval: %s never started waiting\n", id.c_str());
                return 1;
            }
            outsider.raise_event(id, "approved", durable::Json{{"by", "auto-approve"}});
        }

        auto wait = std::chrono::milliseconds(args.timeout_ms * 2) + 60s;
        auto state = client.wait_for_completion(id, wait);
        host.stop();
        if (state.status != durable::Status::Completed) {
            std::fprintf(stderr, "approval: %s ended %s\n", id.c_str(), std::string(durable::to_string(state.status)).c_str());
            return 1;
        }
        auto result = state.output.get<o::ApprovalResult>();
        std::printf("outcome: %s%s%s%s\n", result.outcome.c_str(), result.escalated ? " (after escalation)" : "",
                    result.decided_by.empty() ? "" : ", by ", result.decided_by.c_str());
        return 0;
    } catch (const durable::Error& e) {
        std::fprintf(stderr, "approval: %s\n", e.what());
        return 1;
    }
}
