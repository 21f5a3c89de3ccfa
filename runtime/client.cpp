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
#include "runtime/tracing_ids.hpp"
#include "store/store.hpp"

namespace durable {

namespace ev = detail::ev;


namespace detail {

store::WriteResult wait_write(const std::function<void(store::WriteCallback)>& submit) {
    store::LeaderCommits leader;  // this thread waits for the write anyway: it may commit it
    std::promise<store::WriteResult> done;
    auto f = done.get_future();
    submit([&done](const store::WriteResult& r) { done.set_value(r); });
    auto r = f.get();
    if (r.error) std::rethrow_exception(r.error);
    return r;
}

// The sampler that decides the traces of instances this client schedules: the attached
// host's, else the process's (the OTEL_TRACES_SAMPLER variables, read once).
Sampler sampler_of(const std::shared_ptr<detail::ClientAttachment>& a) {
    if (a) {
        if (auto h = a->host.lock(); h && h->options.trace_sampler) return *h->options.trace_sampler;
    }
    static const Sampler process_sampler = Sampler::from_environment();
    return process_sampler;
}

Json parse_or(const std::optional<std::string>& s) {
    if (!s) return Json();
    try {
        return Json::parse(*s);
    } catch (const std::exception&) {
        return Json(*s);
    }
}


// Times a client writes come from the clock lease and timer times are compared in: the
// attached host's, else the database's (the server's for PostgreSQL).
std::int64_t client_wall_ms(const Database& db, const std::shared_ptr<detail::ClientAttachment>& a) {
    if (a) {
        if (auto h = a->host.lock()) return h->clock->now_ms();
    }
    return db.clock()->now_ms();
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

std::string client_actor(const std::shared_ptr<detail::ClientAttachment>& a) {
    if (a) {
        if (auto h = a->host.lock()) return "client@" + h->id;
    }
    return fmt::format("client@pid{}", static_cast<long>(getpid()));
}

}  // namespace detail

using detail::client_actor;
using detail::client_wall_ms;
using detail::parse_or;
using detail::to_state;
using detail::wait_write;


Client::Client(Database db) : db_(std::move(db)), versions_(std::make_shared<detail::VersionCache>()) {}

std::string Client::schedule(const std::string& name, const Json& input, const ScheduleOptions& options) {
    return schedule_with_result(name, input, options).id;
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

namespace {

// The inbox row and audit entry of a raise_event; throws InvalidInput as raise_event says.
std::pair<store::NewMessage, store::AuditEntry> raise_message(Database& db, const std::shared_ptr<detail::ClientAttachment>& a,
                                                             const std::string& id, const std::string& event_name,
                                                             const Json& payload) {
    if (event_name.empty()) throw InvalidInput("the event name is empty");
    detail::require_utf8(id, "the instance id");
    detail::require_utf8(event_name, "the event name");
    Json e = ev::make(ev::kEventRaised, client_wall_ms(db, a));
    e["name"] = event_name;
    e["input"] = payload;
    std::string text;
    try {
        text = e.dump();
    } catch (const Json::type_error&) {
        throw InvalidInput(fmt::format("the payload of event '{}' holds a string that is not valid UTF-8", event_name));
    }
    if (text.size() > 256 * 1024) throw InvalidInput("the event payload is over the 256 KiB limit");
    return {store::NewMessage{id, client_wall_ms(db, a), false, std::move(text)},
            store::AuditEntry{client_wall_ms(db, a), client_actor(a), "raise_event", id, event_name}};
}

// What the store's answer to a raise_event means: nullptr when delivered, else the error.
std::exception_ptr raise_outcome(const store::WriteResult& r, const std::string& id, const std::string& event_name) {
    if (r.error) return r.error;
    if (r.conflict) {
        if (r.count == 0) {
            return std::make_exception_ptr(InstanceNotFound(fmt::format("no instance '{}' to raise '{}' on", id, event_name)));
        }
        return std::make_exception_ptr(
            InvalidInput(fmt::format("instance '{}' has finished; event '{}' was not delivered", id, event_name)));
    }
    return nullptr;
}

}  // namespace

void Client::raise_event(const std::string& id, const std::string& event_name, const Json& payload) {
    auto [message, audit] = raise_message(db_, attachment_, id, event_name, payload);
    auto store = detail::store_of(db_);
    auto r = wait_write([&](store::WriteCallback cb) { store->send_message(std::move(message), audit, std::move(cb)); });
    if (auto error = raise_outcome(r, id, event_name)) std::rethrow_exception(error);
    if (attachment_) {
        if (auto h = attachment_->host.lock()) h->wake_dispatcher();
    }
}

void Client::raise_event_async(const std::string& id, const std::string& event_name, const Json& payload,
                               std::function<void(std::exception_ptr error)> done) {
    auto [message, audit] = raise_message(db_, attachment_, id, event_name, payload);
    auto store = detail::store_of(db_);
    std::weak_ptr<detail::ClientAttachment> attachment = attachment_;
    store->send_message(std::move(message), std::move(audit),
                        [attachment, id, event_name, done = std::move(done)](const store::WriteResult& r) {
                            auto error = raise_outcome(r, id, event_name);
                            if (!error) {
                                if (auto a = attachment.lock()) {
                                    if (auto h = a->host.lock()) h->wake_dispatcher();
                                }
                            }
                            if (done) done(error);
                        });
}

namespace {

void control(Database& db, const std::shared_ptr<detail::ClientAttachment>& a, const std::string& id,
             std::string_view type, const std::string& reason, const char* action) {
    detail::require_utf8(reason, "the reason");
    Json e = ev::make(type, client_wall_ms(db, a));
    if (!reason.empty()) e["reason"] = reason;
    auto store = detail::store_of(db);
    store::AuditEntry audit{client_wall_ms(db, a), client_actor(a), action, id, reason.empty() ? std::nullopt : std::optional(reason)};
    auto r = wait_write([&](store::WriteCallback cb) {
        store->send_message(store::NewMessage{id, client_wall_ms(db, a), true, e.dump()}, audit, std::move(cb));
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
        store->append_audit(store::AuditEntry{client_wall_ms(db_, attachment_), client_actor(attachment_), "purge", id, std::nullopt}, nullptr);
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
    auto r = wait_write([&](store::WriteCallback cb) { store->purge_instances(f, client_wall_ms(db_, attachment_), std::move(cb)); });
    store->append_audit(store::AuditEntry{client_wall_ms(db_, attachment_), client_actor(attachment_), "purge",
                                          std::nullopt, fmt::format("{} instances", r.count)},
                        nullptr);
    return r.count;
}

void Client::audit(AuditRecord record) const {
    detail::store_of(db_)->append_audit(store::AuditEntry{record.at_ms ? record.at_ms : client_wall_ms(db_, attachment_), std::move(record.actor),
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
    f.id_prefix = filter.id_prefix;
    f.parent_id = filter.parent_id;
    f.newest_first = filter.newest_first;
    f.after_id = after;
    f.limit = static_cast<int>(page_size) + 1;
    auto rows = detail::store_of(db_)->query_instances(f);
    Page p;
    for (std::size_t i = 0; i < rows.size() && i < page_size; ++i) p.instances.push_back(to_state(rows[i]));
    if (rows.size() > page_size && !p.instances.empty()) p.next = p.instances.back().id;
    return p;
}

std::vector<std::pair<Status, std::int64_t>> Client::count_by_status() const {
    std::vector<std::pair<Status, std::int64_t>> out;
    for (auto st : {Status::Pending, Status::Running, Status::Suspended, Status::Completed, Status::Failed,
                    Status::Terminated}) {
        out.emplace_back(st, 0);
    }
    for (const auto& [st, n] : detail::store_of(db_)->count_by_status()) {
        for (auto& o : out) {
            if (o.first == st) o.second = n;
        }
    }
    return out;
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
    for (auto& r : detail::store_of(db_)->list_leases(client_wall_ms(db_, attachment_))) {
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
