// Client: creating, inspecting and steering schedules. Changes are read-modify-write under
// the schedule's version (CAS), tried again when a host's step (or another client) got there
// first, so a pause never undoes a tick and a tick never undoes a pause.
#include <fmt/format.h>

#include "durable/client.hpp"
#include "durable/cron.hpp"
#include "durable/errors.hpp"
#include "runtime/client_support.hpp"
#include "runtime/database_access.hpp"
#include "runtime/host_impl.hpp"
#include "runtime/schedule_plan.hpp"
#include "runtime/utf8.hpp"
#include "store/store.hpp"

namespace durable {
namespace {

using detail::wait_write;  // the client's helpers (client_support.hpp): blocking write, clock, actor

// Tells the attached host's scheduler (and, with `dispatch`, its dispatcher) to look now.
void wake(const std::shared_ptr<detail::ClientAttachment>& a, bool dispatch = false) {
    if (!a) return;
    if (auto h = a->host.lock()) {
        if (h->scheduler) h->scheduler->wake();
        if (dispatch) h->wake_dispatcher();
    }
}

ScheduleInfo to_info(const store::ScheduleRow& r) {
    ScheduleInfo i;
    i.spec.id = r.id;
    i.spec.cron = r.cron;
    i.spec.orchestration = r.orchestration;
    if (r.input) {
        try {
            i.spec.input = Json::parse(*r.input);
        } catch (const std::exception&) {
            i.spec.input = *r.input;
        }
    }
    i.spec.overlap = overlap_from_string(r.overlap).value_or(Overlap::Skip);
    i.spec.catchup_window = std::chrono::milliseconds(r.catchup_window_ms);
    i.spec.jitter = std::chrono::milliseconds(r.jitter_ms);
    i.spec.paused = r.paused;
    i.paused = r.paused;
    i.note = r.note;
    i.next_fire_ms = r.next_fire;
    i.last_fire_ms = r.last_fire;
    i.last_instance_id = r.last_instance_id;
    i.buffered_tick_ms = r.buffered_tick;
    i.fired = r.fired;
    i.missed = r.missed;
    i.skipped = r.skipped;
    i.created_at_ms = r.created_at;
    i.updated_at_ms = r.updated_at;
    return i;
}

bool same_definition(const store::ScheduleRow& a, const store::ScheduleRow& b) {
    return a.cron == b.cron && a.orchestration == b.orchestration && a.input == b.input && a.overlap == b.overlap &&
           a.catchup_window_ms == b.catchup_window_ms && a.jitter_ms == b.jitter_ms;
}

// Applies `change` to the schedule's current row and commits it under its version, again
// while the CAS loses; returns the row as committed. Throws ScheduleNotFound.
store::ScheduleRow modify(store::Store& st, const std::string& id, const char* what,
                          const std::function<void(store::ScheduleUpdate&)>& change) {
    for (int attempt = 0;; ++attempt) {
        auto row = st.get_schedule(id);
        if (!row) throw ScheduleNotFound(fmt::format("no schedule '{}' to {} (see `durable schedule list`)", id, what));
        store::ScheduleUpdate u;
        u.row = *row;
        change(u);
        auto r = wait_write([&](store::WriteCallback cb) { st.update_schedule(u, std::move(cb)); });
        if (!r.conflict) {
            u.row.version = r.new_version;
            return u.row;
        }
        if (attempt >= 50) {
            throw StoreError(fmt::format("schedule '{}' kept changing under the {}; try again", id, what));
        }
    }
}

}  // namespace

ScheduleInfo Client::create_schedule(const ScheduleSpec& spec) {
    if (spec.id.empty()) throw InvalidInput("the schedule id is empty");
    detail::require_utf8(spec.id, "the schedule id");
    if (spec.orchestration.empty()) throw InvalidInput(fmt::format("schedule '{}': the orchestration name is empty", spec.id));
    detail::require_utf8(spec.orchestration, "the orchestration name");
    CronExpression cron = [&] {
        try {
            return CronExpression::parse(spec.cron);
        } catch (const InvalidInput& e) {
            throw InvalidInput(fmt::format("schedule '{}': {}", spec.id, e.what()));
        }
    }();
    if (spec.catchup_window.count() < 0) {
        throw InvalidInput(fmt::format("schedule '{}': the catch-up window is negative ({} ms)", spec.id,
                                       spec.catchup_window.count()));
    }
    if (spec.jitter.count() < 0) {
        throw InvalidInput(fmt::format("schedule '{}': the jitter is negative ({} ms)", spec.id, spec.jitter.count()));
    }
    std::string in;
    try {
        in = spec.input.dump();
    } catch (const Json::type_error&) {
        throw InvalidInput(fmt::format("schedule '{}': the input holds a string that is not valid UTF-8", spec.id));
    }
    std::shared_ptr<Host::Impl> host = attachment_ ? attachment_->host.lock() : nullptr;
    std::size_t limit = host ? host->options.max_payload_bytes : 256 * 1024;
    if (in.size() > limit) {
        throw InvalidInput(fmt::format("schedule '{}': the input is {} bytes, over the {}-byte limit; pass a "
                                       "reference to the data instead of the data",
                                       spec.id, in.size(), limit));
    }
    const auto now = detail::client_wall_ms(db_, attachment_);
    store::ScheduleRow row;
    row.id = spec.id;
    row.cron = spec.cron;
    row.orchestration = spec.orchestration;
    row.input = in;
    row.overlap = to_string(spec.overlap);
    row.catchup_window_ms = spec.catchup_window.count();
    row.jitter_ms = spec.jitter.count();
    row.paused = spec.paused;
    if (!spec.paused) row.next_fire = cron.next_after(now);
    row.created_at = row.updated_at = now;
    auto st = detail::store_of(db_);
    store::AuditEntry audit{now, detail::client_actor(attachment_), "schedule_create", std::nullopt,
                            fmt::format("schedule '{}': '{}' starts {}", spec.id, spec.cron, spec.orchestration)};
    auto r = wait_write([&](store::WriteCallback cb) { st->create_schedule(row, audit, std::move(cb)); });
    if (r.conflict) {
        auto existing = st->get_schedule(spec.id);
        if (existing && same_definition(*existing, row)) return to_info(*existing);
        if (!existing) throw StoreError(fmt::format("schedule '{}' was deleted while being created; try again", spec.id));
        throw InvalidInput(fmt::format("schedule '{}' exists already with another definition ('{}' starting {}); "
                                       "delete it first, or choose another id",
                                       spec.id, existing->cron, existing->orchestration));
    }
    wake(attachment_);
    auto created = st->get_schedule(spec.id);
    return to_info(created ? *created : row);
}

std::optional<ScheduleInfo> Client::get_schedule(const std::string& id) const {
    auto row = detail::store_of(db_)->get_schedule(id);
    if (!row) return std::nullopt;
    return to_info(*row);
}

std::vector<ScheduleInfo> Client::list_schedules() const {
    std::vector<ScheduleInfo> out;
    for (const auto& r : detail::store_of(db_)->list_schedules()) out.push_back(to_info(r));
    return out;
}

ScheduleInfo Client::pause_schedule(const std::string& id, const std::string& reason) {
    auto now = detail::client_wall_ms(db_, attachment_);
    auto actor = detail::client_actor(attachment_);
    auto row = modify(*detail::store_of(db_), id, "pause", [&](store::ScheduleUpdate& u) {
        u.row.paused = true;
        u.row.note = reason.empty() ? std::nullopt : std::optional<std::string>(reason);
        u.row.next_fire.reset();
        u.row.updated_at = now;
        u.audit = {store::AuditEntry{now, actor, "schedule_pause", std::nullopt,
                                     fmt::format("schedule '{}'{}", id, reason.empty() ? "" : ": " + reason)}};
    });
    return to_info(row);
}

ScheduleInfo Client::resume_schedule(const std::string& id) {
    auto now = detail::client_wall_ms(db_, attachment_);
    auto actor = detail::client_actor(attachment_);
    auto row = modify(*detail::store_of(db_), id, "resume", [&](store::ScheduleUpdate& u) {
        if (!u.row.paused) return;  // nothing to do; the CAS still confirms it exists
        u.row.paused = false;
        u.row.note.reset();
        // Ticks that passed while paused are not caught up: the next is the first after now.
        u.row.next_fire = CronExpression::parse(u.row.cron).next_after(now);
        u.row.updated_at = now;
        u.audit = {store::AuditEntry{now, actor, "schedule_resume", std::nullopt, fmt::format("schedule '{}'", id)}};
    });
    wake(attachment_);
    return to_info(row);
}

std::string Client::trigger_schedule(const std::string& id) {
    auto now = detail::client_wall_ms(db_, attachment_);
    auto actor = detail::client_actor(attachment_);
    // One id for every try: a try run again after an unknown outcome creates nothing twice.
    const std::string iid = id + "@trigger-" + new_instance_id();
    modify(*detail::store_of(db_), id, "trigger", [&](store::ScheduleUpdate& u) {
        u.instances = {detail::schedule_instance(u.row, iid, now, now, actor)};
        u.row.last_instance_id = iid;
        ++u.row.fired;
        u.row.updated_at = now;
        u.audit = {store::AuditEntry{now, actor, "schedule_trigger", iid, fmt::format("schedule '{}'", id)}};
    });
    wake(attachment_, true);
    return iid;
}

bool Client::delete_schedule(const std::string& id) {
    auto now = detail::client_wall_ms(db_, attachment_);
    auto st = detail::store_of(db_);
    store::AuditEntry audit{now, detail::client_actor(attachment_), "schedule_delete", std::nullopt, fmt::format("schedule '{}'", id)};
    auto r = wait_write([&](store::WriteCallback cb) { st->delete_schedule(id, audit, std::move(cb)); });
    return r.count > 0;
}

}  // namespace durable
