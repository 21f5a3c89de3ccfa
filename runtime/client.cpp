// Client: schedules and steers instances; every write is durable when the call returns.
#include <algorithm>
#include <fmt/format.h>
#include <future>
#include <mutex>
#include <thread>

#include "durable/client.hpp"
#include "durable/errors.hpp"
#include "runtime/client_support.hpp"
#include "runtime/completion_hub.hpp"
#include "runtime/database_access.hpp"
#include "runtime/history.hpp"
#include "runtime/utf8.hpp"
#include "runtime/host_impl.hpp"
#include "store/store.hpp"

namespace durable {

namespace ev = detail::ev;

// The newest version live hosts register, per orchestration name, for a client that has no
// host of its own: one read of the hosts table a second at most (schedule is a hot path).
struct detail::VersionCache {
    std::mutex mu;
    std::chrono::steady_clock::time_point read_at{};    // guarded by mu
    std::map<std::string, std::string> newest;           // guarded by mu
};

namespace detail {

store::WriteResult wait_write(const std::function<void(store::WriteCallback)>& submit) {
    std::promise<store::WriteResult> done;
    auto f = done.get_future();
    submit([&done](const store::WriteResult& r) { done.set_value(r); });
    auto r = f.get();
    if (r.error) std::rethrow_exception(r.error);
    return r;
}

// Times a client writes come from the clock lease and timer times are compared in: the
// attached host's, else the database's (the server's for PostgreSQL).
std::int64_t wall_ms(const Database& db, const std::shared_ptr<detail::ClientAttachment>& a) {
    if (a) {
        if (auto h = a->host.lock()) return h->clock->now_ms();
    }
    return db.clock()->now_ms();
}

Json parse_or(const std::optional<std::string>& s) {
    if (!s) return Json();
    try {
        return Json::parse(*s);
    } catch (const std::exception&) {
        return Json(*s);
    }
}

InstanceState to_state(const store::InstanceRow& r) {
    InstanceState s;
    s.id = r.id;
    s.name = r.name;
    s.execution_id = r.execution_id;
    s.status = r.status;
    s.input = parse_or(r.input);
    s.output = parse_or(r.output);
    s.custom_status = parse_or(r.custom_status);
    s.error = parse_or(r.error);
    s.parent_id = r.parent_id;
    s.created_at_ms = r.created_at;
    s.updated_at_ms = r.updated_at;
    s.completed_at_ms = r.completed_at;
    s.lease_owner = r.lease_owner;
    s.lease_expires_at_ms = r.lease_expires_at;
    s.version = r.orchestration_version.value_or("");
    return s;
}

std::string actor_name(const std::shared_ptr<detail::ClientAttachment>& a) {
    if (a) {
        if (auto h = a->host.lock()) return "client@" + h->id;
    }
    return fmt::format("client@pid{}", static_cast<long>(getpid()));
}

}  // namespace detail

namespace {

using detail::actor_name;
using detail::parse_or;
using detail::to_state;
using detail::wait_write;
using detail::wall_ms;

}  // namespace


Client::Client(Database db) : db_(std::move(db)), versions_(std::make_shared<detail::VersionCache>()) {}

std::string Client::schedule(const std::string& name, const Json& input, const ScheduleOptions& options) {
    return schedule_with_result(name, input, options).id;
}

ScheduleResult Client::schedule_with_result(const std::string& name, const Json& input,
                                            const ScheduleOptions& options) {
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
        auto now = wall_ms(db_, attachment_);
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
            auto wall = wall_ms(db_, attachment_);
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
    inst.trace_parent = options.traceparent;
    inst.orchestration_version = version;
    inst.actor = actor_name(attachment_);
    auto store = detail::store_of(db_);
    // A finished instance may be purged between the write that found it and the read of its
    // state; then the id is free and the write is tried again.
    for (int attempt = 0;; ++attempt) {
        inst.execution_id = new_instance_id();
        inst.now = wall_ms(db_, attachment_);
        inst.start_at = options.start_at ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                               options.start_at->time_since_epoch()).count()
                                         : inst.now;
        Json start = ev::make(ev::kExecutionStarted, inst.now);
        start["name"] = name;
        start["input"] = input;
        start["cid"] = options.correlation_id ? *options.correlation_id : inst.id;
        if (options.traceparent) start["tp"] = *options.traceparent;
        inst.start_event = start.dump();
        bool here = host && inst.start_at <= inst.now;
        inst.lease_owner.reset();
        inst.lease_expires_at = 0;
        if (here) {
            // Created leased to the attached host, which starts it at once (no claim round trip).
            inst.lease_owner = host->id;
            inst.lease_expires_at = inst.now + host->lease_ms();
        }
        auto r = wait_write([&](store::WriteCallback cb) { store->create_instance(inst, std::move(cb)); });
        if (!r.ids.empty()) {
            ScheduleResult result{inst.id, true, r.count > 0, Status::Pending};
            // A waiter of this process may remember the replaced instance as finished.
            if (result.replaced) detail::DatabaseAccess::completions(db_)->forget(inst.id);
            if (here) host->adopt_created(inst, r.inbox_id, std::move(start));
            return result;
        }
        auto existing = store->get_instance(inst.id);
        if (!existing) {
            if (attempt < 3) continue;
            throw StoreError(fmt::format("instance '{}' kept appearing and disappearing while being scheduled", inst.id));
        }
        if (options.if_exists == IfExists::Return) return ScheduleResult{inst.id, false, false, existing->status};
        if (options.if_exists == IfExists::Fail) {
            throw InstanceExists(fmt::format("instance '{}' exists already ({} '{}'); choose another id, or schedule "
                                             "with IfExists::Return or IfExists::Restart",
                                             inst.id, to_string(existing->status), existing->name));
        }
        throw InstanceExists(fmt::format("instance '{}' exists already and is {}; only a finished instance can be "
                                         "restarted: terminate it first",
                                         inst.id, to_string(existing->status)));
    }
}

std::optional<InstanceState> Client::get_status(const std::string& id) const {
    auto row = detail::store_of(db_)->get_instance(id);
    if (!row) return std::nullopt;
    return to_state(*row);
}

InstanceState Client::wait_for_completion(const std::string& id, std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto hub = detail::DatabaseAccess::completions(db_);
    // A client attached to a host is woken by it; it looks at the database now and then only
    // for instances another process runs. A standalone client looks more often.
    auto poll = std::chrono::milliseconds(attachment_ ? 25 : 2);
    for (;;) {
        auto s = get_status(id);
        if (!s) throw InstanceNotFound(fmt::format("no instance '{}' in {}", id, db_.path()));
        if (is_terminal(s->status)) return *s;
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            throw Timeout(fmt::format("instance '{}' did not finish within {} ms (it is {})", id, timeout.count(),
                                      to_string(s->status)));
        }
        // Woken at once by a host of this process; other processes' commits are seen by
        // looking again with a growing interval. A note that the id finished, while it is not
        // finished, is of an earlier instance with that id (restarted since): forgotten.
        if (hub->wait(id, std::min(deadline, now + poll))) hub->forget(id);
        poll = std::min(poll * 2, std::chrono::milliseconds(100));
    }
}

InstanceState Client::wait_for_start(const std::string& id, std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto hub = detail::DatabaseAccess::completions(db_);
    // A start is a commit of some host: one of this process wakes us through the hub's
    // progress count; another process's is seen by looking again with a growing interval.
    auto poll = std::chrono::milliseconds(attachment_ ? 25 : 2);
    for (;;) {
        auto seen = hub->progress();
        auto s = get_status(id);
        if (!s) throw InstanceNotFound(fmt::format("no instance '{}' in {}", id, db_.path()));
        if (s->status != Status::Pending) return *s;
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            throw Timeout(fmt::format("instance '{}' did not start within {} ms", id, timeout.count()));
        }
        hub->wait_progress(seen, std::min(deadline, now + poll));
        poll = std::min(poll * 2, std::chrono::milliseconds(100));
    }
}

void Client::raise_event(const std::string& id, const std::string& event_name, const Json& payload) {
    if (event_name.empty()) throw InvalidInput("the event name is empty");
    detail::require_utf8(id, "the instance id");
    detail::require_utf8(event_name, "the event name");
    Json e = ev::make(ev::kEventRaised, wall_ms(db_, attachment_));
    e["name"] = event_name;
    e["input"] = payload;
    std::string text;
    try {
        text = e.dump();
    } catch (const Json::type_error&) {
        throw InvalidInput(fmt::format("the payload of event '{}' holds a string that is not valid UTF-8", event_name));
    }
    if (text.size() > 256 * 1024) throw InvalidInput("the event payload is over the 256 KiB limit");
    auto store = detail::store_of(db_);
    store::AuditEntry audit{wall_ms(db_, attachment_), actor_name(attachment_), "raise_event", id, event_name};
    auto r = wait_write([&](store::WriteCallback cb) {
        store->send_message(store::NewMessage{id, wall_ms(db_, attachment_), false, text}, audit, std::move(cb));
    });
    if (r.conflict) {
        if (r.count == 0) throw InstanceNotFound(fmt::format("no instance '{}' to raise '{}' on", id, event_name));
        throw InvalidInput(fmt::format("instance '{}' has finished; event '{}' was not delivered", id, event_name));
    }
    if (attachment_) {
        if (auto h = attachment_->host.lock()) h->wake_dispatcher();
    }
}

namespace {

void control(Database& db, const std::shared_ptr<detail::ClientAttachment>& a, const std::string& id,
             std::string_view type, const std::string& reason, const char* action) {
    detail::require_utf8(reason, "the reason");
    Json e = ev::make(type, wall_ms(db, a));
    if (!reason.empty()) e["reason"] = reason;
    auto store = detail::store_of(db);
    store::AuditEntry audit{wall_ms(db, a), actor_name(a), action, id, reason.empty() ? std::nullopt : std::optional(reason)};
    auto r = wait_write([&](store::WriteCallback cb) {
        store->send_message(store::NewMessage{id, wall_ms(db, a), true, e.dump()}, audit, std::move(cb));
    });
    if (r.conflict) {
        if (r.count == 0) throw InstanceNotFound(fmt::format("no instance '{}' to {}", id, action));
        throw InvalidInput(fmt::format("instance '{}' has already finished; nothing to {}", id, action));
    }
    if (a) {
        if (auto h = a->host.lock()) h->wake_dispatcher();
    }
}

}  // namespace

void Client::terminate(const std::string& id, const std::string& reason, bool recursive) {
    control(db_, attachment_, id, ev::kExecutionTerminated, reason, "terminate");
    if (!recursive) return;
    store::InstanceFilter f;
    f.parent_id = id;
    f.statuses = {Status::Pending, Status::Running, Status::Suspended};
    f.limit = 10000;
    for (const auto& child : detail::store_of(db_)->query_instances(f)) {
        try {
            terminate(child.id, reason.empty() ? "parent terminated" : reason, true);
        } catch (const InvalidInput&) {
            // finished meanwhile
        }
    }
}

void Client::suspend(const std::string& id, const std::string& reason) {
    control(db_, attachment_, id, ev::kExecutionSuspended, reason, "suspend");
}

void Client::resume(const std::string& id, const std::string& reason) {
    control(db_, attachment_, id, ev::kExecutionResumed, reason, "resume");
}

bool Client::purge(const std::string& id) {
    auto store = detail::store_of(db_);
    auto r = wait_write([&](store::WriteCallback cb) { store->purge_instance(id, std::move(cb)); });
    if (r.conflict) {
        throw InvalidInput(fmt::format("instance '{}' is still running; terminate it first, then purge it", id));
    }
    if (r.count > 0) {
        store->append_audit(store::AuditEntry{wall_ms(db_, attachment_), actor_name(attachment_), "purge", id, std::nullopt}, nullptr);
    }
    return r.count > 0;
}

std::int64_t Client::purge(const std::vector<Status>& statuses,
                           std::optional<std::chrono::system_clock::time_point> completed_before) {
    store::PurgeFilter f;
    f.statuses = statuses;
    if (completed_before) {
        f.completed_before =
            std::chrono::duration_cast<std::chrono::milliseconds>(completed_before->time_since_epoch()).count();
    }
    auto store = detail::store_of(db_);
    auto r = wait_write([&](store::WriteCallback cb) { store->purge_instances(f, wall_ms(db_, attachment_), std::move(cb)); });
    store->append_audit(store::AuditEntry{wall_ms(db_, attachment_), actor_name(attachment_), "purge",
                                          std::nullopt, fmt::format("{} instances", r.count)},
                        nullptr);
    return r.count;
}

void Client::audit(AuditRecord record) const {
    detail::store_of(db_)->append_audit(store::AuditEntry{record.at_ms ? record.at_ms : wall_ms(db_, attachment_), std::move(record.actor),
                                                std::move(record.action), std::move(record.instance_id),
                                                std::move(record.detail)},
                              nullptr);
}

Page Client::query(const QueryFilter& filter, std::size_t page_size, const std::optional<std::string>& after) const {
    store::InstanceFilter f;
    f.statuses = filter.statuses;
    f.name = filter.name;
    auto ms = [](std::chrono::system_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    };
    if (filter.created_from) f.created_from = ms(*filter.created_from);
    if (filter.created_to) f.created_to = ms(*filter.created_to);
    f.after_id = after;
    f.limit = static_cast<int>(page_size) + 1;
    auto rows = detail::store_of(db_)->query_instances(f);
    Page p;
    for (std::size_t i = 0; i < rows.size() && i < page_size; ++i) p.instances.push_back(to_state(rows[i]));
    if (rows.size() > page_size && !p.instances.empty()) p.next = p.instances.back().id;
    return p;
}

std::vector<HistoryEntry> Client::history(const std::string& id, std::int64_t from_seq, int limit) const {
    auto store = detail::store_of(db_);
    std::vector<HistoryEntry> out;
    for (auto& h : store->get_history(id, from_seq, limit)) {
        out.push_back(HistoryEntry{h.seq, parse_or(h.event)});
    }
    // No events: an instance that has none yet (or none past from_seq), or no instance.
    if (out.empty() && !store->get_instance(id)) {
        throw InstanceNotFound(fmt::format("no instance '{}' in {} (never scheduled, or purged)", id, db_.path()));
    }
    return out;
}

std::vector<HostInfo> Client::hosts() const {
    std::vector<HostInfo> out;
    for (auto& h : detail::store_of(db_)->list_hosts()) {
        out.push_back(HostInfo{h.id, h.hostname, h.pid, h.started_at, h.heartbeat_at, h.stopped_at, h.leases,
                               std::move(h.orchestrations), std::move(h.activities), h.lease_ms,
                               std::move(h.orchestration_versions)});
    }
    return out;
}

std::vector<LeaseInfo> Client::leases() const {
    std::vector<LeaseInfo> out;
    for (auto& r : detail::store_of(db_)->list_leases(wall_ms(db_, attachment_))) {
        out.push_back(LeaseInfo{r.id, r.name, r.status, r.lease_owner.value_or(""), r.lease_expires_at});
    }
    return out;
}

std::vector<AuditRecord> Client::audit_log(const std::optional<std::string>& instance_id, int limit) const {
    if (limit < 1) throw InvalidInput(fmt::format("an audit log limit must be at least 1, got {}", limit));
    std::vector<AuditRecord> out;
    for (auto& a : detail::store_of(db_)->audit_log(instance_id, limit)) {
        out.push_back(AuditRecord{a.at, std::move(a.actor), std::move(a.action), std::move(a.instance_id),
                                  std::move(a.detail)});
    }
    return out;
}

WatchEnd Client::watch(const std::string& id, const std::function<bool(const HistoryEntry&)>& on_event,
                       std::int64_t from_seq, std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto not_found = [&] { return InstanceNotFound(fmt::format("no instance '{}' to watch", id)); };
    // Live from the process's change-feed distributor (commits of every process on the file);
    // history from the store fills the start and any gap. Subscribing before the first read
    // leaves no seam: an event committed in between arrives live and is skipped by its seq.
    auto sub = db_.events()->subscribe(SubscribeOptions{id, std::nullopt, 0, OverflowPolicy::DropOldest});
    std::int64_t next = from_seq;
    auto catch_up = [&]() -> bool {
        for (auto& h : history(id, next)) {
            next = h.seq + 1;
            if (!on_event(h)) return false;
        }
        return true;
    };
    if (!get_status(id)) throw not_found();
    if (!catch_up()) return WatchEnd::Stopped;
    while (std::chrono::steady_clock::now() < deadline) {
        auto status = get_status(id);
        if (!status) throw not_found();  // purged meanwhile
        if (is_terminal(status->status)) return catch_up() ? WatchEnd::Finished : WatchEnd::Stopped;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        auto item = sub->next(std::clamp(left, std::chrono::milliseconds(1), std::chrono::milliseconds(100)));
        if (!item) continue;
        if (auto* e = std::get_if<std::shared_ptr<const WatchEvent>>(&*item)) {
            if ((*e)->seq < next) continue;
            if ((*e)->seq > next && !catch_up()) return WatchEnd::Stopped;
            if ((*e)->seq != next) continue;
            next = (*e)->seq + 1;
            if (!on_event(HistoryEntry{(*e)->seq, (*e)->event})) return WatchEnd::Stopped;
        } else if (std::holds_alternative<WatchGap>(*item)) {
            if (!catch_up()) return WatchEnd::Stopped;
        } else {
            break;  // closed (the database handle is shutting down): go on from the store
        }
    }
    // Past the live loop (timed out, or the feed closed): the store, woken by this process's
    // commits, until the deadline.
    auto hub = detail::DatabaseAccess::completions(db_);
    for (;;) {
        auto seen = hub->progress();
        auto status = get_status(id);
        if (!status) throw not_found();
        for (auto& h : history(id, next)) {
            next = h.seq + 1;
            if (!on_event(h)) return WatchEnd::Stopped;
        }
        if (is_terminal(status->status)) return WatchEnd::Finished;
        if (std::chrono::steady_clock::now() >= deadline) return WatchEnd::TimedOut;
        hub->wait_progress(seen, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
    }
}

}  // namespace durable
