// Client: the forms that wait without a thread (schedule_async, on_completion) and the
// scheduling they share with the blocking schedule().
//
// A schedule's create is a store write whose callback runs on the store's commit thread;
// when the id existed already, what follows (a read, perhaps another write) runs on the
// process's waiting thread (AsyncWaits), never on the commit thread. An asynchronous wait is
// a check the waiting thread runs when a host of this process finishes the instance, at
// growing poll intervals, and at its deadline.
//
// The callbacks hold the store and the hub only weakly: a pending call never keeps the
// database open, and a database closed under it ends the call with a StoreError.
#include <algorithm>
#include <fmt/format.h>
#include <future>

#include "durable/client.hpp"
#include "durable/errors.hpp"
#include "durable/tracing.hpp"
#include "runtime/client_support.hpp"
#include "runtime/completion_hub.hpp"
#include "runtime/database_access.hpp"
#include "runtime/history.hpp"
#include "runtime/host_impl.hpp"
#include "runtime/tracing_ids.hpp"
#include "runtime/utf8.hpp"
#include "store/store.hpp"

namespace durable {

namespace ev = detail::ev;

namespace {

std::exception_ptr closed_error(const std::string& what) {
    return std::make_exception_ptr(StoreError(fmt::format("the database handle was closed while {}", what)));
}

// One schedule call, from its first write to its answer.
struct ScheduleJob {
    std::weak_ptr<store::Store> store;
    std::weak_ptr<detail::CompletionHub> hub;
    // The client's attachment to a host, when that host starts the instance (it registers the
    // name); empty: created unleased, for whichever host has it.
    std::shared_ptr<detail::ClientAttachment> starter;
    std::shared_ptr<Clock> clock;    // the clock its times come from
    Json input;
    ScheduleOptions options;
    store::NewInstance inst;
    Json start;         // the start event of the current attempt
    bool here = false;  // the current attempt creates it leased to `host`
    bool sampled = true;  // the head-sampling decision (false: no spans anywhere)
    int attempt = 0;
    AsyncHandler<ScheduleResult> done;
};

void submit(const std::shared_ptr<ScheduleJob>& job);

void finish(const std::shared_ptr<ScheduleJob>& job, std::optional<ScheduleResult> result, std::exception_ptr error) {
    auto done = std::move(job->done);
    if (done) done(std::move(result), error);
}

// The id existed: what it is decides the answer (on the waiting thread: this reads).
void resolve_existing(const std::shared_ptr<ScheduleJob>& job) {
    auto store = job->store.lock();
    if (!store) return finish(job, std::nullopt, closed_error("scheduling instance '" + job->inst.id + "'"));
    const auto& id = job->inst.id;
    std::optional<store::InstanceRow> existing;
    try {
        existing = store->get_instance(id);
    } catch (...) {
        return finish(job, std::nullopt, std::current_exception());
    }
    if (!existing) {
        // A finished instance may be purged between the write that found it and this read;
        // then the id is free and the write is tried again.
        if (++job->attempt <= 3) return submit(job);
        return finish(job, std::nullopt, std::make_exception_ptr(StoreError(fmt::format(
            "instance '{}' kept appearing and disappearing while being scheduled", id))));
    }
    switch (job->options.if_exists) {
        case IfExists::Return:
            return finish(job, ScheduleResult{id, false, false, existing->status}, nullptr);
        case IfExists::Fail:
            return finish(job, std::nullopt, std::make_exception_ptr(InstanceExists(fmt::format(
                "instance '{}' exists already ({} '{}'); choose another id, or schedule with IfExists::Return or "
                "IfExists::Restart",
                id, to_string(existing->status), existing->name))));
        case IfExists::Restart:
            break;
    }
    finish(job, std::nullopt, std::make_exception_ptr(InstanceExists(fmt::format(
        "instance '{}' exists already and is {}; only a finished instance can be restarted: terminate it first", id,
        to_string(existing->status)))));
}

// On the store's commit thread: the create is durable (or failed).
void on_created(const std::shared_ptr<ScheduleJob>& job, const store::WriteResult& r) {
    if (r.error) return finish(job, std::nullopt, r.error);
    if (!r.ids.empty()) {
        ScheduleResult result{job->inst.id, true, r.count > 0, Status::Pending};
        // A waiter of this process may remember the replaced instance as finished.
        if (result.replaced) {
            if (auto hub = job->hub.lock()) hub->forget(job->inst.id);
        }
        if (job->here) {
            if (auto host = job->starter->host.lock()) host->adopt_created(job->inst, r.inbox_id, std::move(job->start));
        }
        return finish(job, std::move(result), nullptr);
    }
    auto hub = job->hub.lock();
    if (!hub) return finish(job, std::nullopt, closed_error("scheduling instance '" + job->inst.id + "'"));
    hub->async().post([job] { resolve_existing(job); });
}

void submit(const std::shared_ptr<ScheduleJob>& job) {
    auto store = job->store.lock();
    if (!store) return finish(job, std::nullopt, closed_error("scheduling instance '" + job->inst.id + "'"));
    auto& inst = job->inst;
    const auto& options = job->options;
    inst.execution_id = new_instance_id();
    inst.now = job->clock->now_ms();
    inst.start_at = options.start_at ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                           options.start_at->time_since_epoch()).count()
                                     : inst.now;
    Json start = ev::make(ev::kExecutionStarted, inst.now);
    start["name"] = inst.name;
    start["input"] = job->input;
    start["cid"] = options.correlation_id ? *options.correlation_id : inst.id;
    if (inst.trace_parent) start["tp"] = *inst.trace_parent;
    if (!job->sampled) start["sampled"] = false;
    inst.start_event = start.dump();
    job->start = std::move(start);
    auto host = job->starter ? job->starter->host.lock() : nullptr;
    job->here = host && inst.start_at <= inst.now;
    inst.lease_owner.reset();
    inst.lease_expires_at = 0;
    if (job->here) {
        // Created leased to the attached host, which starts it at once (no claim round trip).
        inst.lease_owner = host->id;
        inst.lease_expires_at = inst.now + host->lease_ms();
    }
    store->create_instance(inst, [job](const store::WriteResult& r) { on_created(job, r); });
}

}  // namespace

ScheduleResult Client::schedule_with_result(const std::string& name, const Json& input,
                                            const ScheduleOptions& options) {
    std::promise<ScheduleResult> answer;
    auto f = answer.get_future();
    store::LeaderCommits leader;  // this thread waits for the create anyway: it may commit it
    schedule_async(name, input, options, [&answer](std::optional<ScheduleResult> r, std::exception_ptr e) {
        if (e) {
            answer.set_exception(e);
        } else {
            answer.set_value(std::move(*r));
        }
    });
    return f.get();
}

void Client::schedule_async(const std::string& name, const Json& input, const ScheduleOptions& options,
                            AsyncHandler<ScheduleResult> done) {
    if (name.empty()) throw InvalidInput("the orchestration name is empty");
    detail::require_utf8(name, "the orchestration name");
    if (options.instance_id) {
        if (options.instance_id->empty()) {
            throw InvalidInput("the instance id is empty; leave it unset to get a generated one");
        }
        detail::require_utf8(*options.instance_id, "the instance id");
    }
    if (options.correlation_id) detail::require_utf8(*options.correlation_id, "the correlation id");
    if (options.version) detail::require_utf8(*options.version, "the orchestration version");
    std::shared_ptr<Host::Impl> host = attachment_ ? attachment_->host.lock() : nullptr;
    // A host with a default orchestrator (remote code) runs every name and version.
    const bool here_has = host && (host->registry->default_orchestrator() != nullptr ||
                                   (options.version ? host->registry->orchestrator(name, *options.version) != nullptr
                                                    : host->registry->orchestrator(name) != nullptr));
    if (host && !here_has) {
        // Not this host's code: fine if another live host registers it (it claims the
        // instance); otherwise most likely a typo.
        bool elsewhere = false;
        auto now = detail::client_wall_ms(db_, attachment_);
        for (const auto& h : hosts()) {
            if (!h.live_at(now)) continue;
            if (options.version) {
                auto it = h.versions.find(name);
                if (it != h.versions.end() &&
                    std::find(it->second.begin(), it->second.end(), *options.version) != it->second.end()) {
                    elsewhere = true;
                }
            } else if (std::find(h.orchestrations.begin(), h.orchestrations.end(), name) != h.orchestrations.end()) {
                elsewhere = true;
            }
        }
        if (!elsewhere) {
            std::string known;
            for (const auto& n : host->registry->orchestrator_names()) {
                for (const auto& v : host->registry->orchestrator_versions(n)) {
                    known += (known.empty() ? "" : ", ") + n + (v.empty() ? "" : " v" + v);
                }
            }
            if (options.version) {
                throw UnknownOrchestration(fmt::format("no host registers version '{}' of orchestration '{}' (this "
                                                       "host or any live host); known here: {}",
                                                       *options.version, name, known));
            }
            throw UnknownOrchestration(fmt::format("no orchestration named '{}' is registered on this host or any live host; "
                                           "known here: {}",
                                           name, known));
        }
        host = nullptr;  // created unleased, for the host that has it
    }
    std::optional<std::string> version = options.version;
    if (!version && host) version = host->registry->newest_version(name);
    if (!version) {
        // The newest a live host registers; none: the first host to run it decides.
        auto& cache = *versions_;
        std::lock_guard lock(cache.mu);
        auto now = std::chrono::steady_clock::now();
        if (now - cache.read_at > std::chrono::seconds(1)) {
            cache.newest.clear();
            auto wall = detail::client_wall_ms(db_, attachment_);
            for (const auto& h : hosts()) {
                if (!h.live_at(wall)) continue;
                for (const auto& [n, vs] : h.versions) {
                    for (const auto& v : vs) {
                        auto it = cache.newest.find(n);
                        if (it == cache.newest.end() || compare_versions(it->second, v) < 0) cache.newest[n] = v;
                    }
                }
            }
            cache.read_at = now;
        }
        if (auto it = cache.newest.find(name); it != cache.newest.end()) version = it->second;
    }
    std::string in;
    try {
        in = input.dump();
    } catch (const Json::type_error&) {
        throw InvalidInput(fmt::format("the input of '{}' holds a string that is not valid UTF-8", name));
    }
    std::size_t limit = host ? host->options.max_payload_bytes : 256 * 1024;
    if (in.size() > limit) {
        throw InvalidInput(fmt::format("the input of '{}' is {} bytes, over the {}-byte limit; pass a reference to "
                                       "the data instead of the data",
                                       name, in.size(), limit));
    }
    store::NewInstance inst;
    inst.id = options.instance_id ? *options.instance_id : new_instance_id();
    inst.name = name;
    inst.input = in;
    inst.replace_finished = options.if_exists == IfExists::Restart;
    if (options.traceparent && !TraceContext::parse(*options.traceparent)) {
        throw InvalidInput(fmt::format("traceparent '{}' is not a W3C trace context (00-<32 hex>-<16 hex>-<2 hex>)",
                                       *options.traceparent));
    }
    // Head sampling: decided here, once for the instance's whole trace, and persisted with it
    // (the traceparent's flag, or `sampled` in the start event when it roots its own trace).
    const Sampler sampler = detail::sampler_of(attachment_);
    bool sampled = true;
    if (options.traceparent) {
        auto caller = TraceContext::parse(*options.traceparent);
        caller->sampled = sampler.should_sample(caller->trace_id, caller->sampled);
        inst.trace_parent = caller->traceparent();
    } else if (sampler.root != Sampler::Root::AlwaysOn) {
        // The trace the instance roots is derived from its id (the same on every host).
        sampled = sampler.should_sample(detail::instance_trace({}, inst.id, {}).trace_id, std::nullopt);
    }
    inst.orchestration_version = version;
    inst.actor = detail::client_actor(attachment_);
    auto job = std::make_shared<ScheduleJob>();
    job->store = detail::store_of(db_);
    job->hub = detail::DatabaseAccess::completions(db_);
    if (host) job->starter = attachment_;
    job->clock = host ? host->clock : db_.clock();
    job->input = input;
    job->options = options;
    job->sampled = sampled;
    job->inst = std::move(inst);
    job->done = std::move(done);
    submit(job);
}

void Client::on_completion(const std::string& id, AsyncHandler<InstanceState> done,
                           std::chrono::milliseconds timeout) const {
    auto hub = detail::DatabaseAccess::completions(db_);
    std::weak_ptr<store::Store> weak_store = detail::store_of(db_);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    // As wait_for_completion: a client attached to a host is woken by it and looks at the
    // database now and then only for instances another process runs; a standalone one looks
    // more often.
    auto first_poll = std::chrono::milliseconds(attachment_ ? 25 : 2);
    hub->async().add(id, deadline, first_poll,
                     [weak_store, id, path = db_.path(), timeout, done = std::move(done)](detail::WakeReason why) {
                         if (why == detail::WakeReason::Closing) {
                             done(std::nullopt, closed_error("waiting for instance '" + id + "'"));
                             return true;
                         }
                         auto store = weak_store.lock();
                         if (!store) {
                             done(std::nullopt, closed_error("waiting for instance '" + id + "'"));
                             return true;
                         }
                         std::optional<store::InstanceRow> row;
                         try {
                             row = store->get_instance(id);
                         } catch (...) {
                             done(std::nullopt, std::current_exception());
                             return true;
                         }
                         if (!row) {
                             done(std::nullopt, std::make_exception_ptr(InstanceNotFound(
                                                    fmt::format("no instance '{}' in {}", id, path))));
                             return true;
                         }
                         if (is_terminal(row->status)) {
                             done(detail::to_state(*row), nullptr);
                             return true;
                         }
                         if (why != detail::WakeReason::Deadline) return false;
                         done(std::nullopt, std::make_exception_ptr(Timeout(fmt::format(
                                                "instance '{}' did not finish within {} ms (it is {})", id,
                                                timeout.count(), to_string(row->status)))));
                         return true;
                     });
}

std::future<InstanceState> Client::wait_for_completion_async(const std::string& id,
                                                             std::chrono::milliseconds timeout) const {
    auto answer = std::make_shared<std::promise<InstanceState>>();
    auto f = answer->get_future();
    on_completion(
        id,
        [answer](std::optional<InstanceState> s, std::exception_ptr e) {
            if (e) {
                answer->set_exception(e);
            } else {
                answer->set_value(std::move(*s));
            }
        },
        timeout);
    return f;
}

}  // namespace durable
