// OrchestrationContext: the user-facing side of an Execution.
#include <algorithm>
#include <cmath>

#include "runtime/execution.hpp"

namespace durable {

using detail::Decision;

const std::string& OrchestrationContext::instance_id() const {
    return exec_.info().instance_id;
}

const std::string& OrchestrationContext::name() const {
    return exec_.info().name;
}

bool OrchestrationContext::is_replaying() const {
    return exec_.is_replaying();
}

std::chrono::system_clock::time_point OrchestrationContext::now() const {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(exec_.now_ms()));
}

std::string OrchestrationContext::new_uuid() {
    return exec_.new_uuid();
}

bool OrchestrationContext::continue_as_new_suggested() const {
    return exec_.continue_as_new_suggested();
}

const std::string& OrchestrationContext::version() const {
    return exec_.info().version;
}

bool OrchestrationContext::patched(std::string_view patch_id) {
    return exec_.patched(std::string(patch_id));
}

void OrchestrationContext::deprecate_patch(std::string_view patch_id) {
    exec_.deprecate_patch(std::string(patch_id));
}

void OrchestrationContext::schedule_activity_impl(std::string name, Json input, std::shared_ptr<detail::StateBase> s) {
    Decision d;
    d.kind = Decision::Kind::Activity;
    d.name = std::move(name);
    d.input = std::move(input);
    exec_.schedule(std::move(d), std::move(s));
}

void OrchestrationContext::schedule_sub_impl(std::string name, Json input, std::optional<std::string> id,
                                             std::shared_ptr<detail::StateBase> s) {
    Decision d;
    d.kind = Decision::Kind::SubOrchestration;
    d.name = std::move(name);
    d.input = std::move(input);
    if (id) d.target = *id;  // else Execution derives one from the task id
    exec_.schedule(std::move(d), std::move(s));
}

Task<void> OrchestrationContext::create_timer(std::chrono::milliseconds delay) {
    return create_timer(now() + delay);
}

Task<void> OrchestrationContext::create_timer(std::chrono::system_clock::time_point at) {
    auto s = std::make_shared<detail::State<void>>();
    Decision d;
    d.kind = Decision::Kind::Timer;
    d.fire_at = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
    exec_.schedule(std::move(d), s);
    return Task<void>(s);
}

void OrchestrationContext::wait_event_impl(std::string name, std::shared_ptr<detail::StateBase> s) {
    exec_.wait_event(name, std::move(s));
}

void OrchestrationContext::cancel_event_wait(const std::string& name, const std::shared_ptr<detail::StateBase>& s) {
    exec_.cancel_event_wait(name, s);
}

void OrchestrationContext::send_event_impl(std::string instance_id, std::string name, Json payload) {
    Decision d;
    d.kind = Decision::Kind::SendEvent;
    d.name = std::move(name);
    d.target = std::move(instance_id);
    d.input = std::move(payload);
    exec_.schedule(std::move(d), std::make_shared<detail::State<void>>());
}

void OrchestrationContext::continue_as_new_impl(Json input, bool keep_events) {
    exec_.request_continue_as_new(std::move(input), keep_events);
}

void OrchestrationContext::set_custom_status_impl(Json status) {
    exec_.set_custom_status(std::move(status));
}

void OrchestrationContext::log_impl(const std::string& line) {
    exec_.log().info("[instance {}] [cid {}] {}", exec_.info().instance_id, exec_.info().correlation_id, line);
}

std::chrono::milliseconds OrchestrationContext::retry_delay(const RetryPolicy& p, int attempt) {
    double ms = static_cast<double>(p.first_delay.count()) * std::pow(p.backoff_coefficient, attempt - 1);
    ms = std::min(ms, static_cast<double>(p.max_delay.count()));
    return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

}  // namespace durable
