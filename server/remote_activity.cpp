// Activities run by connected workers (see remote_activity.hpp).
#include "server/remote_activity.hpp"

#include <fmt/format.h>
#include <future>

#include "server/history_mapping.hpp"

namespace durable::server {

ActivityFn remote_activity(std::shared_ptr<WorkItemHub> hub) {
    return [hub](ActivityContext& ctx, const Json& input) -> Json {
        ::WorkItem w;
        auto* req = w.mutable_activityrequest();
        req->set_name(ctx.name());
        if (auto text = payload_text(input)) req->mutable_input()->set_value(*text);
        req->mutable_orchestrationinstance()->set_instanceid(ctx.instance_id());
        req->set_taskid(static_cast<std::int32_t>(ctx.task_id()));
        const std::string key = activity_key(ctx.instance_id(), ctx.task_id());

        auto answer = std::make_shared<std::promise<WorkResult>>();
        auto future = answer->get_future();
        if (!hub->submit(key, std::move(w), [answer](WorkResult r) { answer->set_value(std::move(r)); })) {
            throw TaskFailed("ActivityNotDispatched",
                             fmt::format("activity '{}' (task {} of {}) could not be handed to a worker: the server "
                                         "is stopping or the same task is already out",
                                         ctx.name(), ctx.task_id(), ctx.instance_id()));
        }
        // Slices: the answer wakes the wait at once; between slices the call's cancellation
        // (the host stopping) is looked at.
        while (future.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
            if (ctx.cancellation().cancelled()) {
                hub->withdraw(key);
                throw Timeout(fmt::format("activity '{}' was cancelled while a worker had it", ctx.name()));
            }
        }
        WorkResult r = future.get();
        if (r.kind == WorkResult::Kind::Refused) {
            // The server stopped before any worker answered; the host stops next, and the
            // activity runs again after it (an activity runs at least once).
            while (!ctx.cancellation().cancelled()) {
                ctx.cancellation().wait_for(SystemClock::instance(), std::chrono::seconds(1));
            }
            throw Timeout(fmt::format("activity '{}' was not answered before the server stopped", ctx.name()));
        }
        const auto& resp = r.activity;
        if (resp.has_failuredetails()) {
            const auto& f = resp.failuredetails();
            throw TaskFailed(f.errortype().empty() ? "Error" : f.errortype(), f.errormessage(),
                             f.has_stacktrace() ? f.stacktrace().value() : std::string());
        }
        try {
            return payload_from(resp.result(), resp.has_result(), "result");
        } catch (const MappingError& e) {
            throw TaskFailed("InvalidResult", fmt::format("activity '{}' answered with a result that is not JSON: {}",
                                                          ctx.name(), e.what()));
        }
    };
}

}  // namespace durable::server
