// The PostgreSQL store: one writer connection owned by one commit thread (group commit, a
// batch pipelined in one round trip), reader connections, a listener connection that follows
// other processes' commits (LISTEN durable_changes) and the server's clock.
//
// Group commit: writes queue up; the commit thread takes everything queued (up to
// max_batch_ops), sends the batch's statements through a libpqxx pipeline as ONE message that
// the server runs as one transaction and commits (one round trip a batch), and only then runs
// the callbacks, in commit order. Should a write fail (an SQL error), the batch runs again
// with a savepoint per write, so it fails alone.
//
// Failures of the server are waited out, not passed on: a batch that meets a transient error
// (connection lost, admin shutdown, serialization failure) is tried again through the write
// pipeline (retry, circuit breaker) and then, while the server stays away, every half second
// until it is back or the store closes. A batch whose COMMIT was sent but not answered is
// resolved write by write before anything runs again: an episode by the instance's
// version (expected + 1 and still ours: it landed; expected: it did not, run it again;
// anything else: the lease is lost), a claim likewise, idempotent writes run again, and the
// rest (messages, audit entries) fail with an error saying the outcome is unknown.
//
// Threads: durable-commit (the writer), durable-pgwatch (LISTEN and the clock offset), and
// each SharedProvider's builder. Reads run on the caller's thread.
#include "store/postgres/postgres_store.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fmt/format.h>
#include <future>
#include <mutex>
#include <regex>
#include <spdlog/spdlog.h>
#include <thread>

#include "durable/resilience.hpp"
#include "durable/shared_provider.hpp"
#include "store/postgres/connect.hpp"
#include "store/postgres/statements.hpp"
#include "store/named_thread.hpp"

namespace durable::store {

std::string redact_conninfo(const std::string& conninfo) {
    // URL: scheme://user:password@host -> scheme://user@host; key=value: password=... -> password=***
    static const std::regex url_password(R"(^(postgres(?:ql)?://[^:/@?]*):[^@/?]*@)");
    static const std::regex kv_password(R"((^|\s)password\s*=\s*('([^'\\]|\\.)*'|\S+))");
    static const std::regex query_password(R"(([?&])password=[^&]*)");
    std::string s = std::regex_replace(conninfo, url_password, "$1@");
    s = std::regex_replace(s, query_password, "$1password=***");
    return std::regex_replace(s, kv_password, "$1password=***");
}

namespace postgres {
namespace {

using Conn = pqxx::connection;
using ConnProvider = SharedProvider<std::string, Conn>;

// The outcome of a COMMIT is unknown: the connection broke after it was sent.
class InDoubt : public StoreError {
public:
    using StoreError::StoreError;
};
// A write's statement failed (not transiently): the batch runs again with savepoints.
class WriteFailed : public StoreError {
public:
    using StoreError::StoreError;
};

enum class OnDoubt { Rerun, Read, Fail };

struct Write {
    std::string sql;  // EXECUTE ...; empty for flush markers
    std::function<void(const pqxx::result&, WriteResult&)> parse;
    // A statement run just before `sql` in the same transaction (empty: none), and what its
    // result adds to the write's (after `parse`).
    std::string pre;
    std::function<void(const pqxx::result&, WriteResult&)> parse_pre;
    OnDoubt on_doubt = OnDoubt::Rerun;
    // OnDoubt::Read: fills the result from what the database holds; false: run it again.
    std::function<bool(pqxx::transaction_base&, WriteResult&)> resolve;
    WriteCallback done;
    WriteResult result;
};

std::int64_t system_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool is_transient(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const Transient&) {
        return true;
    } catch (...) {
        return false;
    }
}

ResiliencePolicy read_policy() {
    ResiliencePolicy p;
    RetryOptions r;
    r.max_attempts = 8;
    r.base_delay = std::chrono::milliseconds(50);
    r.max_delay = std::chrono::milliseconds(1'000);
    r.is_transient = is_transient;
    p.retry = r;
    CircuitBreakerOptions b;
    b.failure_threshold = 16;
    b.break_duration = std::chrono::milliseconds(500);
    p.breaker = b;
    return p;
}

ResiliencePolicy write_policy() {
    ResiliencePolicy p;
    RetryOptions r;
    r.max_attempts = 4;
    r.base_delay = std::chrono::milliseconds(50);
    r.max_delay = std::chrono::milliseconds(500);
    r.is_transient = is_transient;
    p.retry = r;
    CircuitBreakerOptions b;
    b.failure_threshold = 8;
    b.break_duration = std::chrono::milliseconds(500);
    p.breaker = b;
    return p;
}

SharedProviderOptions provider_options() {
    SharedProviderOptions o;
    o.backoff = Backoff::Exponential;
    o.retry_delay = std::chrono::milliseconds(100);
    o.max_delay = std::chrono::milliseconds(2'000);
    o.jitter = true;
    return o;
}

nlohmann::json json_strings(const std::vector<std::string>& v) {
    auto a = nlohmann::json::array();
    for (const auto& s : v) a.push_back(s);
    return a;
}

void opt_num(Call& c, const std::optional<Millis>& v) {
    if (v) {
        c.num(*v);
    } else {
        c.null();
    }
}

// The schedule's own fields, cron .. skipped, in the order both schedule functions take them.
void schedule_fields(Call& c, const ScheduleRow& row) {
    c.text(row.cron).text(row.orchestration).opt(row.input).text(row.overlap)
        .num(row.catchup_window_ms).num(row.jitter_ms).flag(row.paused).opt(row.note);
    opt_num(c, row.next_fire);
    opt_num(c, row.last_fire);
    c.opt(row.last_instance_id);
    opt_num(c, row.buffered_tick);
    c.num(row.fired).num(row.missed).num(row.skipped);
}

nlohmann::json opt_json(const std::optional<std::string>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json();
}

// Events of one commit, newline-separated (as the SQLite store keeps them); a raw newline in
// compact JSON can only be whitespace, so one in an event is written as a space.
std::optional<std::string> pack_events(const std::vector<std::string>& events) {
    if (events.empty()) return std::nullopt;
    std::string packed;
    for (const auto& e : events) {
        if (!packed.empty()) packed += '\n';
        auto from = packed.size();
        packed += e;
        std::replace(packed.begin() + static_cast<std::ptrdiff_t>(from), packed.end(), '\n', ' ');
    }
    return packed;
}

std::string bigint_array(const std::vector<std::int64_t>& ids) {
    std::string s = "{";
    for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
    return s + "}";
}

class PostgresStore final : public Store {
public:
    PostgresStore(std::string conninfo, PostgresOptions options)
        : conninfo_(std::move(conninfo)), where_(redact_conninfo(conninfo_)), options_(options),
          read_pipeline_("postgres-read", read_policy()), write_pipeline_("postgres-write", write_policy()) {
        auto first = connect_at_open();
        migrate(*first, where_, options_.read_only);
        {
            pqxx::nontransaction tx(*first);
            server_version_ = tx.exec("SHOW server_version")[0][0].as<std::string>();
            auto sc = tx.exec(fmt::format("SET synchronous_commit = {}; SHOW synchronous_commit",
                                          options_.synchronous_commit ? "on" : "off"));
            synchronous_commit_ = sc[0][0].as<std::string>();
        }
        measure_clock(*first);
        first.reset();

        auto factory = [this](Role role) {
            return [this, role](const std::string& info, std::function<void()>) {
                return connect(info, role, options_.synchronous_commit);
            };
        };
        for (int i = 0; i < std::max(1, options_.readers); ++i) {
            readers_.push_back(std::make_unique<ConnProvider>(fmt::format("postgres-reader-{}", i), conninfo_,
                                                              factory(Role::Reader), provider_options()));
            reader_busy_.push_back(false);
        }
        listener_ = std::make_unique<ConnProvider>("postgres-listener", conninfo_, factory(Role::Listener),
                                                   provider_options());
        if (!options_.read_only) {
            writer_ = std::make_unique<ConnProvider>("postgres-writer", conninfo_, factory(Role::Writer),
                                                     provider_options());
            commit_thread_ = durable::detail::named_thread("durable-commit", [this] { commit_loop(); });
        }
        watch_thread_ = durable::detail::named_thread("durable-pgwatch", [this] { watch_loop(); });
    }

    ~PostgresStore() override {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        if (commit_thread_.joinable()) commit_thread_.join();
        {
            std::lock_guard lock(watch_mu_);
            watch_stopping_ = true;
        }
        watch_cv_.notify_all();
        if (watch_thread_.joinable()) watch_thread_.join();
        writer_.reset();
        listener_.reset();
        readers_.clear();
    }

    // ---- writes ----
    void create_instance(NewInstance inst, WriteCallback cb) override {
        Write w;
        // A finished instance to replace goes in a statement of its own, just before, in the
        // same transaction (its count tells the parse below whether it did).
        std::string replace = inst.replace_finished ? Call("durable_replace_finished").text(inst.id).done() : "";
        w.sql = Call("durable_create")
                    .text(inst.id).text(inst.name).text(inst.execution_id).opt(inst.input).opt(inst.parent_id)
                    .num(inst.parent_task_id).num(inst.now).opt(inst.lease_owner)
                    .num(inst.lease_owner ? inst.lease_expires_at : 0).num(inst.start_at).text(inst.start_event)
                    .text(inst.actor).flag(inst.replace_finished).opt(inst.trace_parent)
                    .opt(inst.orchestration_version)
                    .done();
        w.pre = std::move(replace);
        w.parse = [id = inst.id](const pqxx::result& r, WriteResult& out) {
            out.ok = true;
            if (r.empty() || r[0][0].is_null()) return;  // idempotent: the id exists already
            out.inbox_id = r[0][0].as<std::int64_t>();
            out.ids.push_back(id);
        };
        w.parse_pre = [](const pqxx::result& r, WriteResult& out) {
            out.count = !r.empty() && r[0][0].as<std::int64_t>() > 0 ? 1 : 0;  // replaced a finished one
        };
        // Running it again after an unknown outcome finds the row, and reports "not created";
        // the creator then reads the instance as any second creator would.
        w.on_doubt = OnDoubt::Rerun;
        enqueue(std::move(w), std::move(cb));
    }

    void send_message(NewMessage msg, std::optional<AuditEntry> audit, WriteCallback cb) override {
        Write w;
        Call c("durable_send");
        c.text(msg.instance_id).num(msg.visible_at).flag(msg.control).text(msg.event);
        if (audit) {
            c.num(audit->at).text(audit->actor).text(audit->action).opt(audit->instance_id).opt(audit->detail);
        } else {
            c.null().null().null().null().null();
        }
        w.sql = c.done();
        w.parse = [](const pqxx::result& r, WriteResult& out) {
            bool exists = !r.empty() && !r[0][0].is_null();
            if (r.empty() || r[0][1].is_null()) {
                out.conflict = true;
                out.count = exists ? 1 : 0;
                return;
            }
            out.ok = true;
            out.count = 1;
        };
        w.on_doubt = OnDoubt::Fail;
        enqueue(std::move(w), std::move(cb));
    }

    void commit_episode(EpisodeCommit e, WriteCallback cb) override {
        Write w;
        auto messages = nlohmann::json::array();
        for (const auto& m : e.messages) {
            messages.push_back({{"instance_id", m.instance_id}, {"visible_at", m.visible_at}, {"control", m.control},
                                {"event", m.event}});
        }
        auto kids = nlohmann::json::array();
        for (const auto& k : e.new_instances) {
            kids.push_back({{"id", k.id}, {"name", k.name}, {"execution_id", k.execution_id}, {"input", opt_json(k.input)},
                            {"parent_id", opt_json(k.parent_id)}, {"parent_task_id", k.parent_task_id}, {"now", k.now},
                            {"lease_owner", opt_json(k.lease_owner)},
                            {"lease_expires_at", k.lease_owner ? k.lease_expires_at : 0}, {"start_at", k.start_at},
                            {"start_event", k.start_event}, {"actor", k.actor},
                            {"trace_parent", opt_json(k.trace_parent)},
                            {"orchestration_version", opt_json(k.orchestration_version)}});
        }
        auto tasks = nlohmann::json::array();
        for (const auto& t : e.tasks) {
            tasks.push_back({{"instance_id", t.instance_id}, {"task_id", t.task_id}, {"name", t.name},
                             {"input", opt_json(t.input)}, {"execution_id", t.execution_id},
                             {"visible_at", t.visible_at}, {"trace_parent", opt_json(t.trace_parent)}});
        }
        auto audit = nlohmann::json::array();
        for (const auto& a : e.audit) {
            audit.push_back({{"at", a.at}, {"actor", a.actor}, {"action", a.action},
                             {"instance_id", opt_json(a.instance_id)}, {"detail", opt_json(a.detail)}});
        }
        const bool terminal = is_terminal(e.status);
        const bool lean = messages.empty() && kids.empty() && tasks.empty() && audit.empty() && !e.reset_history;
        if (lean) {
            w.sql = Call("durable_commit_lean")
                        .text(e.instance_id).text(e.owner).num(e.expected_version).text(to_string(e.status))
                        .text(e.execution_id).opt(e.input).opt(e.output).opt(e.error).opt(e.custom_status).num(e.now)
                        .flag(terminal).flag(e.release_lease).num(e.lease_expires_at).flag(e.progressed)
                        .num(e.first_seq).opt(pack_events(e.events)).text(bigint_array(e.consumed_inbox))
                        .num(static_cast<std::int64_t>(e.events.size())).opt(e.orchestration_version)
                        .done();
        } else {
            w.sql = Call("durable_commit")
                        .text(e.instance_id).text(e.owner).num(e.expected_version).text(to_string(e.status))
                        .text(e.execution_id).opt(e.input).opt(e.output).opt(e.error).opt(e.custom_status).num(e.now)
                        .flag(terminal).flag(e.release_lease).num(e.lease_expires_at).flag(e.progressed)
                        .flag(e.reset_history).num(e.first_seq).opt(pack_events(e.events))
                        .text(bigint_array(e.consumed_inbox)).json(messages).json(kids).json(tasks).json(audit)
                        .num(static_cast<std::int64_t>(e.events.size())).opt(e.orchestration_version)
                        .done();
        }
        const auto expected = e.expected_version;
        w.parse = [expected](const pqxx::result& r, WriteResult& out) {
            if (r.empty() || r[0][0].as<std::int64_t>() == 0) {
                out.conflict = true;  // the lease CAS touched no row: nothing was written
                return;
            }
            out.ok = true;
            out.new_version = expected + 1;
        };
        w.on_doubt = OnDoubt::Read;
        w.resolve = [id = e.instance_id, owner = e.owner, expected, release = e.release_lease,
                     status = std::string(to_string(e.status))](pqxx::transaction_base& tx, WriteResult& out) {
            auto r = tx.exec(Call("durable_version").text(id).done());
            if (r.empty()) {
                out.conflict = true;
                return true;
            }
            auto version = r[0][0].as<std::int64_t>();
            auto holder = opt_text(r[0][1]);
            if (version == expected) return false;  // it did not land: run it again
            // A released lease with the episode's status: ours (another host's claim and
            // release would leave the status it found).
            bool landed = holder == owner || (release && !holder && r[0][2].as<std::string>() == status);
            if (version == expected + 1 && landed) {
                out.ok = true;
                out.new_version = expected + 1;
                return true;
            }
            out.conflict = true;  // the instance moved on without us
            return true;
        };
        enqueue(std::move(w), std::move(cb));
    }

    void claim_instances(std::vector<Candidate> cands, std::string owner, Millis now, Millis lease_until,
                         WriteCallback cb) override {
        Write w;
        auto list = nlohmann::json::array();
        for (const auto& c : cands) list.push_back({{"id", c.id}, {"v", c.version}});
        w.sql = Call("durable_claim").text(owner).num(lease_until).num(now).json(list).done();
        w.parse = [](const pqxx::result& r, WriteResult& out) {
            for (const auto& row : r) out.ids.push_back(row[0].as<std::string>());
            out.ok = true;
            out.count = static_cast<std::int64_t>(out.ids.size());
        };
        w.on_doubt = OnDoubt::Read;
        w.resolve = [cands = std::move(cands), owner](pqxx::transaction_base& tx, WriteResult& out) {
            for (const auto& c : cands) {
                auto r = tx.exec(Call("durable_version").text(c.id).done());
                if (!r.empty() && r[0][0].as<std::int64_t>() == c.version + 1 && opt_text(r[0][1]) == owner) {
                    out.ids.push_back(c.id);
                }
            }
            out.ok = true;
            out.count = static_cast<std::int64_t>(out.ids.size());
            return true;
        };
        enqueue(std::move(w), std::move(cb));
    }

    void renew_leases(std::string owner, Millis now, Millis lease_until, WriteCallback cb) override {
        Write w;
        w.sql = Call("durable_renew").text(owner).num(now).num(lease_until).done();
        w.parse = [](const pqxx::result& r, WriteResult& out) {
            for (const auto& row : r) {
                if (row[0].as<std::string>() == "i") {
                    out.ids.push_back(row[1].as<std::string>());
                } else {
                    out.rows.push_back(row[2].as<std::int64_t>());
                }
            }
            out.ok = true;
            out.count = static_cast<std::int64_t>(out.ids.size());
        };
        enqueue(std::move(w), std::move(cb));
    }

    void release_leases(std::string owner, std::vector<std::string> ids, bool orphan, WriteCallback cb) override {
        Write w;
        w.sql = Call("durable_release").text(owner).text(json_strings(ids).dump()).flag(orphan).flag(ids.empty()).done();
        w.parse = [](const pqxx::result& r, WriteResult& out) {
            out.ok = true;
            out.count = r.empty() ? 0 : r[0][0].as<std::int64_t>();
        };
        enqueue(std::move(w), std::move(cb));
    }

    void rewind_instances(std::vector<Rewind> rewinds, WriteCallback cb) override {
        Write w;
        auto rs = nlohmann::json::array();
        auto messages = nlohmann::json::array();
        auto audit = nlohmann::json::array();
        for (const auto& rw : rewinds) {
            rs.push_back({{"id", rw.instance_id}, {"next_seq", rw.next_seq}, {"now", rw.now}});
            for (const auto& m : rw.messages) {
                messages.push_back({{"instance_id", m.instance_id}, {"visible_at", m.visible_at},
                                    {"control", m.control}, {"event", m.event}});
            }
            if (rw.audit) {
                const auto& a = *rw.audit;
                audit.push_back({{"at", a.at}, {"actor", a.actor}, {"action", a.action},
                                 {"instance_id", opt_json(a.instance_id)}, {"detail", opt_json(a.detail)}});
            }
        }
        std::vector<std::string> ids;
        for (const auto& rw : rewinds) ids.push_back(rw.instance_id);
        w.sql = Call("durable_rewind").json(rs).json(messages).json(audit).done();
        w.parse = [ids = std::move(ids)](const pqxx::result& r, WriteResult& out) {
            auto n = r.empty() ? 0 : r[0][0].as<std::int64_t>();
            if (n == 0 && !ids.empty()) {
                out.conflict = true;
                return;
            }
            out.ok = true;
            out.count = n;
            out.ids = ids;
        };
        w.on_doubt = OnDoubt::Fail;
        enqueue(std::move(w), std::move(cb));
    }

    void heartbeat(HostRow h, WriteCallback cb) override {
        Write w;
        Call c("durable_heartbeat");
        c.text(h.id).text(h.hostname).num(h.pid).num(h.started_at).num(h.heartbeat_at);
        if (h.stopped_at) {
            c.num(*h.stopped_at);
        } else {
            c.null();
        }
        c.text(nlohmann::json(h.orchestrations).dump()).text(nlohmann::json(h.activities).dump()).num(h.lease_ms);
        c.text(nlohmann::json(h.orchestration_versions).dump());
        w.sql = c.done();
        w.parse = [](const pqxx::result&, WriteResult& out) { out.ok = true; };
        enqueue(std::move(w), std::move(cb));
    }

    void claim_tasks(std::vector<std::string> names, std::string owner, Millis lease_ms, int limit,
                     std::function<void(std::vector<ClaimedTask>, std::exception_ptr)> cb) override {
        auto out = std::make_shared<std::vector<ClaimedTask>>();
        Write w;
        w.sql = Call("durable_claim_tasks").text(json_strings(names).dump()).text(owner).num(lease_ms).num(limit).done();
        w.parse = [out](const pqxx::result& r, WriteResult& res) {
            out->clear();
            for (const auto& row : r) {
                ClaimedTask t;
                t.row_id = row[0].as<std::int64_t>();
                t.instance_id = row[1].as<std::string>();
                t.execution_id = row[2].as<std::string>();
                t.name = row[3].as<std::string>();
                t.task_id = row[4].as<std::int64_t>();
                t.input = opt_text(row[5]);
                t.attempt = row[6].as<std::int64_t>();
                t.heartbeat_details = opt_text(row[7]);
                t.trace_parent = opt_text(row[8]);
                out->push_back(std::move(t));
            }
            res.ok = true;
        };
        enqueue(std::move(w), [out, cb = std::move(cb)](const WriteResult& r) {
            cb(r.error ? std::vector<ClaimedTask>{} : std::move(*out), r.error);
        });
    }

    void complete_task(std::int64_t row_id, std::string owner, NewMessage completion, WriteCallback cb) override {
        Write w;
        w.sql = Call("durable_complete_task").num(row_id).text(owner).text(completion.instance_id)
                    .num(completion.visible_at).text(completion.event).done();
        w.parse = [](const pqxx::result& r, WriteResult& out) {
            if (r.empty() || r[0][0].as<std::int64_t>() == 0) {
                out.conflict = true;
                return;
            }
            out.ok = true;
        };
        enqueue(std::move(w), std::move(cb));
    }

    void release_tasks(std::string owner, std::vector<std::int64_t> rows, WriteCallback cb) override {
        Write w;
        w.sql = Call("durable_release_tasks").text(owner).text(bigint_array(rows)).done();
        w.parse = [](const pqxx::result& r, WriteResult& out) {
            out.ok = true;
            out.count = r.empty() ? 0 : r[0][0].as<std::int64_t>();
        };
        enqueue(std::move(w), std::move(cb));
    }

    void heartbeat_task(std::int64_t row_id, std::string owner, Millis lease_ms, std::optional<std::string> details,
                        WriteCallback cb) override {
        Write w;
        w.sql = Call("durable_heartbeat_task").num(row_id).text(owner).num(lease_ms).opt(details).done();
        w.parse = [](const pqxx::result& r, WriteResult& out) {
            if (r.empty() || r[0][0].as<std::int64_t>() == 0) {
                out.conflict = true;  // the row is gone or another host's: the activity should stop
                return;
            }
            out.ok = true;
        };
        enqueue(std::move(w), std::move(cb));
    }

    void purge_instance(std::string id, WriteCallback cb) override {
        Write w;
        w.sql = Call("durable_purge_one").text(id).done();
        w.parse = [](const pqxx::result& r, WriteResult& out) {
            out.ok = true;
            if (r.empty() || r[0][0].is_null()) return;  // count 0: nothing to purge
            if (r[0][1].as<std::int64_t>() == 0) {
                out.ok = false;
                out.conflict = true;  // still running
                return;
            }
            out.count = 1;
        };
        enqueue(std::move(w), std::move(cb));
    }

    void purge_instances(PurgeFilter filter, Millis now, WriteCallback cb) override {
        (void)now;
        std::vector<std::string> statuses;
        for (auto s : filter.statuses.empty()
                          ? std::vector<Status>{Status::Completed, Status::Failed, Status::Terminated}
                          : filter.statuses) {
            if (is_terminal(s)) statuses.emplace_back(to_string(s));
        }
        Write w;
        Call c("durable_purge_many");
        c.text(json_strings(statuses).dump());
        if (filter.completed_before) {
            c.num(*filter.completed_before);
        } else {
            c.null();
        }
        w.sql = c.done();
        w.parse = [](const pqxx::result& r, WriteResult& out) {
            out.ok = true;
            out.count = r.empty() ? 0 : r[0][0].as<std::int64_t>();
        };
        enqueue(std::move(w), std::move(cb));
    }

    // Schedules: every write runs again after an unknown outcome; a create or step that had
    // landed then answers "conflict", which its caller settles by reading the row.
    void create_schedule(ScheduleRow row, std::optional<AuditEntry> audit, WriteCallback cb) override {
        Write w;
        Call c("durable_schedule_create");
        c.text(row.id);
        schedule_fields(c, row);
        c.num(row.created_at).num(row.updated_at);
        if (audit) {
            c.num(audit->at).text(audit->actor).text(audit->action).opt(audit->detail);
        } else {
            c.num(0).null().null().null();
        }
        w.sql = c.done();
        w.parse = [](const pqxx::result& r, WriteResult& out) {
            if (r.empty() || r[0][0].is_null()) {
                out.conflict = true;
                return;
            }
            out.ok = true;
            out.count = 1;
        };
        w.on_doubt = OnDoubt::Rerun;
        enqueue(std::move(w), std::move(cb));
    }

    void update_schedule(ScheduleUpdate u, WriteCallback cb) override {
        const auto& row = u.row;
        auto kids = nlohmann::json::array();
        for (const auto& k : u.instances) {
            kids.push_back({{"id", k.id}, {"name", k.name}, {"execution_id", k.execution_id},
                            {"input", opt_json(k.input)}, {"now", k.now}, {"start_at", k.start_at},
                            {"start_event", k.start_event}, {"actor", k.actor},
                            {"trace_parent", opt_json(k.trace_parent)}});
        }
        auto audit = nlohmann::json::array();
        for (const auto& a : u.audit) {
            audit.push_back({{"at", a.at}, {"actor", a.actor}, {"action", a.action},
                             {"instance_id", opt_json(a.instance_id)}, {"detail", opt_json(a.detail)}});
        }
        Write w;
        Call c("durable_schedule_update");
        c.text(row.id);
        schedule_fields(c, row);
        c.num(row.updated_at).num(row.version).json(kids).json(audit);
        w.sql = c.done();
        w.parse = [expected = row.version](const pqxx::result& r, WriteResult& out) {
            if (r.empty() || r[0][0].as<std::int64_t>() == 0) {
                out.conflict = true;
                return;
            }
            out.ok = true;
            out.new_version = expected + 1;
            if (!r[0][1].is_null()) {
                for (const auto& id : nlohmann::json::parse(r[0][1].c_str())) out.ids.push_back(id.get<std::string>());
            }
        };
        w.on_doubt = OnDoubt::Rerun;
        enqueue(std::move(w), std::move(cb));
    }

    void delete_schedule(std::string id, std::optional<AuditEntry> audit, WriteCallback cb) override {
        Write w;
        Call c("durable_schedule_delete");
        c.text(id);
        if (audit) {
            c.num(audit->at).text(audit->actor).text(audit->action).opt(audit->detail);
        } else {
            c.num(0).null().null().null();
        }
        w.sql = c.done();
        w.parse = [](const pqxx::result& r, WriteResult& out) {
            out.ok = true;
            out.count = r.empty() ? 0 : r[0][0].as<std::int64_t>();
        };
        w.on_doubt = OnDoubt::Rerun;
        enqueue(std::move(w), std::move(cb));
    }

    void append_audit(AuditEntry a, WriteCallback cb) override {
        Write w;
        w.sql = Call("durable_audit").num(a.at).text(a.actor).text(a.action).opt(a.instance_id).opt(a.detail).done();
        w.parse = [](const pqxx::result&, WriteResult& out) { out.ok = true; };
        w.on_doubt = OnDoubt::Fail;
        enqueue(std::move(w), std::move(cb));
    }

    void flush() override {
        std::promise<void> done;
        auto f = done.get_future();
        Write w;  // no SQL: done once everything queued before it is
        enqueue(std::move(w), [&done](const WriteResult&) { done.set_value(); });
        f.wait();
    }

    // ---- reads ----
    std::optional<InstanceRow> get_instance(const std::string& id) override {
        return read("reading an instance", [&](pqxx::transaction_base& tx) { return postgres::get_instance(tx, id); });
    }
    std::vector<HistoryRow> get_history(const std::string& id, std::int64_t from_seq, int limit) override {
        return read("reading history",
                    [&](pqxx::transaction_base& tx) { return postgres::get_history(tx, id, from_seq, limit); });
    }
    std::vector<InboxRow> get_inbox(const std::string& id, Millis now) override {
        return read("reading an inbox", [&](pqxx::transaction_base& tx) { return postgres::get_inbox(tx, id, now); });
    }
    std::vector<Loaded> load_instances(const std::vector<std::string>& ids, Millis now) override {
        return read("loading instances",
                    [&](pqxx::transaction_base& tx) { return postgres::load_instances(tx, ids, now); });
    }
    std::vector<InstanceRow> query_instances(const InstanceFilter& f) override {
        return read("querying instances", [&](pqxx::transaction_base& tx) { return postgres::query_instances(tx, f); });
    }
    std::vector<std::pair<Status, std::int64_t>> count_by_status() override {
        return read("counting instances", [&](pqxx::transaction_base& tx) { return postgres::count_by_status(tx); });
    }
    std::vector<Candidate> find_claimable(const std::string& owner, const std::vector<OrchestrationCode>& names, Millis now,
                                          int limit) override {
        (void)owner;
        return read("finding claimable work",
                    [&](pqxx::transaction_base& tx) { return postgres::find_claimable(tx, names, now, limit); });
    }
    std::vector<std::string> claimable_task_names(const std::vector<std::string>& names) override {
        return read("finding claimable tasks",
                    [&](pqxx::transaction_base& tx) { return postgres::claimable_task_names(tx, names); });
    }
    std::vector<InboxRow> owned_inbox(const std::string& owner, Millis now, int limit) override {
        return read("reading owned inboxes",
                    [&](pqxx::transaction_base& tx) { return postgres::owned_inbox(tx, owner, now, limit); });
    }
    std::optional<Millis> next_visible_after(Millis now) override {
        return read("reading timers", [&](pqxx::transaction_base& tx) { return postgres::next_visible_after(tx, now); });
    }
    std::vector<HostRow> list_hosts() override {
        auto t = now();
        return read("listing hosts", [&](pqxx::transaction_base& tx) { return postgres::list_hosts(tx, t); });
    }
    std::vector<InstanceRow> list_leases(Millis now) override {
        (void)now;
        return read("listing leases", [&](pqxx::transaction_base& tx) { return postgres::list_leases(tx); });
    }
    std::vector<AuditEntry> audit_log(const std::optional<std::string>& instance_id, int limit) override {
        return read("reading the audit log",
                    [&](pqxx::transaction_base& tx) { return postgres::audit_log(tx, instance_id, limit); });
    }
    std::optional<ScheduleRow> get_schedule(const std::string& id) override {
        return read("reading a schedule", [&](pqxx::transaction_base& tx) { return postgres::get_schedule(tx, id); });
    }
    std::vector<ScheduleRow> list_schedules() override {
        return read("listing schedules", [&](pqxx::transaction_base& tx) { return postgres::list_schedules(tx); });
    }
    std::vector<ScheduleRow> due_schedules(Millis now, int limit) override {
        return read("finding due schedules",
                    [&](pqxx::transaction_base& tx) { return postgres::due_schedules(tx, now, limit); });
    }
    std::optional<Millis> next_schedule_fire() override {
        return read("reading schedules", [&](pqxx::transaction_base& tx) { return postgres::next_schedule_fire(tx); });
    }
    std::int64_t change_counter() override { return changes_.load() + commits_.load(); }
    std::vector<ChangeRow> read_changes(std::int64_t after_seq, int limit) override {
        return read("reading the change feed",
                    [&](pqxx::transaction_base& tx) { return postgres::read_changes(tx, after_seq, limit); });
    }
    std::int64_t change_feed_head() override {
        return read("reading the change feed", [&](pqxx::transaction_base& tx) { return postgres::change_feed_head(tx); });
    }
    void probe() override {
        try {
            auto c = connect(conninfo_, Role::Admin, options_.synchronous_commit);
            pqxx::nontransaction tx(*c);
            tx.exec("SELECT 1 FROM instances LIMIT 1");
        } catch (const StoreError&) {
            throw;
        } catch (const std::exception& e) {
            throw StoreError(fmt::format("PostgreSQL at {} cannot be read: {}", where_, e.what()));
        }
    }
    StoreStats stats() override {
        StoreStats s;
        s.commits = commits_.load();
        s.ops = ops_.load();
        s.busy_wait_us = outage_wait_us_.load();
        return s;
    }
    std::string describe() const override {
        return fmt::format("{} (PostgreSQL {}, synchronous_commit={})", where_, server_version_,
                           synchronous_commit_);
    }
    StoreInfo info() const override {
        return StoreInfo{"postgresql", server_version_, "synchronous_commit=" + synchronous_commit_};
    }
    Millis now() override { return (system_us() + offset_us_.load(std::memory_order_relaxed)) / 1000; }

private:
    // ---- opening ----
    std::shared_ptr<Conn> connect_at_open() {
        auto deadline = std::chrono::steady_clock::now() + options_.connect_wait;
        bool logged = false;
        for (;;) {
            try {
                return connect(conninfo_, Role::Admin, options_.synchronous_commit);
            } catch (const Transient& e) {
                if (std::chrono::steady_clock::now() >= deadline) throw StoreError(e.what());
                if (!logged) spdlog::warn("store: {}; waiting for it", e.what());
                logged = true;
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
            }
        }
    }

    // The server's clock minus this machine's, from the sample with the shortest round trip
    // (the server's reading is taken as halfway through it).
    void measure_clock(Conn& c) {
        std::int64_t best_rtt = -1, offset = 0;
        pqxx::nontransaction tx(c);
        for (int i = 0; i < 3; ++i) {
            auto t0 = system_us();
            auto r = tx.exec("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint");
            auto t1 = system_us();
            auto server = r[0][0].as<std::int64_t>();
            if (best_rtt < 0 || t1 - t0 < best_rtt) {
                best_rtt = t1 - t0;
                offset = server - (t0 + t1) / 2;
            }
        }
        offset_us_.store(offset, std::memory_order_relaxed);
    }

    // ---- reads ----
    template <class F>
    auto read(const char* doing, F&& f) -> decltype(f(std::declval<pqxx::transaction_base&>())) {
        try {
            return read_pipeline_.run([&](const CancellationToken&, int) {
                std::size_t slot = take_reader();
                struct Give {
                    PostgresStore* s;
                    std::size_t slot;
                    ~Give() { s->give_reader(slot); }
                } give{this, slot};
                auto& provider = *readers_[slot];
                std::shared_ptr<Conn> conn = provider.get();  // throws the factory's failure
                try {
                    pqxx::nontransaction tx(*conn);
                    return f(tx);
                } catch (const pqxx::broken_connection& e) {
                    provider.report_broken(conn);
                    throw Transient(fmt::format("lost the connection to PostgreSQL at {} while {}: {}", where_, doing,
                                                e.what()));
                } catch (const pqxx::sql_error& e) {
                    if (connection_gone_sqlstate(e.sqlstate())) provider.report_broken(conn);
                    if (transient_sqlstate(e.sqlstate())) {
                        throw Transient(fmt::format("PostgreSQL at {} failed {}: {}", where_, doing, e.what()));
                    }
                    throw StoreError(fmt::format("PostgreSQL at {} failed {}: {}", where_, doing, e.what()));
                }
            });
        } catch (const StoreError&) {
            throw;
        } catch (const std::exception& e) {
            throw StoreError(fmt::format("PostgreSQL at {}: {} failed: {}", where_, doing, e.what()));
        }
    }

    std::size_t take_reader() {
        std::unique_lock lock(reader_mu_);
        for (;;) {
            for (std::size_t i = 0; i < reader_busy_.size(); ++i) {
                if (!reader_busy_[i]) {
                    reader_busy_[i] = true;
                    return i;
                }
            }
            reader_cv_.wait(lock);
        }
    }
    void give_reader(std::size_t slot) {
        {
            std::lock_guard lock(reader_mu_);
            reader_busy_[slot] = false;
        }
        reader_cv_.notify_one();
    }

    // ---- writes ----
    void enqueue(Write w, WriteCallback cb) {
        w.done = std::move(cb);
        if (options_.read_only) {
            WriteResult r;
            r.error = std::make_exception_ptr(
                StoreError(fmt::format("the database at {} is open read-only; writes need it writable", where_)));
            if (w.done) w.done(r);
            return;
        }
        {
            std::lock_guard lock(mu_);
            queue_.push_back(std::move(w));
        }
        cv_.notify_one();
    }

    void commit_loop() {
        for (;;) {
            std::vector<Write> batch;
            {
                std::unique_lock lock(mu_);
                auto ready = [&] { return stopping_ || !queue_.empty(); };
                if (!numbering_owed_) {
                    cv_.wait(lock, ready);
                } else if (!cv_.wait_for(lock, std::chrono::milliseconds(10), ready)) {
                    // Idle with parked change-feed rows: number them (watchers wait for them).
                    lock.unlock();
                    run_numbering_pass();
                    continue;
                }
                if (queue_.empty()) {
                    // Stopping, and everything is committed: a last try for parked rows (any
                    // other writer numbers them otherwise).
                    if (numbering_owed_) {
                        lock.unlock();
                        run_numbering_pass();
                    }
                    return;
                }
                std::size_t n = std::min<std::size_t>(queue_.size(), static_cast<std::size_t>(options_.max_batch_ops));
                batch.reserve(n);
                for (std::size_t i = 0; i < n; ++i) {
                    batch.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
            }
            std::vector<Write*> todo;
            for (auto& w : batch) {
                if (w.sql.empty()) {
                    w.result.ok = true;
                } else {
                    todo.push_back(&w);
                }
            }
            if (!todo.empty()) execute(todo);
            for (auto& w : batch) {
                if (!w.done) continue;
                try {
                    w.done(w.result);
                } catch (const std::exception& e) {
                    spdlog::error("store: a write callback threw: {}", e.what());
                }
            }
        }
    }

    bool stopping() {
        std::lock_guard lock(mu_);
        return stopping_;
    }

    // Runs `todo` to an outcome: committed, failed alone, resolved after an unknown COMMIT,
    // or failed because the store closes while the server is away.
    void execute(std::vector<Write*> todo) {
        bool in_doubt = false, outage = false;
        auto outage_start = std::chrono::steady_clock::now();
        for (;;) {
            try {
                write_pipeline_.run([&](const CancellationToken&, int) {
                    if (in_doubt) {
                        resolve(todo);
                        in_doubt = false;
                    }
                    if (!todo.empty()) run_pipelined(todo);
                });
                break;
            } catch (const InDoubt& e) {
                spdlog::warn("store: {}; resolving {} writes by reading what the database holds", e.what(), todo.size());
                in_doubt = true;
                continue;
            } catch (const WriteFailed&) {
                try {
                    write_pipeline_.run([&](const CancellationToken&, int) {
                        if (in_doubt) {
                            resolve(todo);
                            in_doubt = false;
                        }
                        run_isolated(todo);
                    });
                    break;
                } catch (const InDoubt& e) {
                    spdlog::warn("store: {}; resolving {} writes", e.what(), todo.size());
                    in_doubt = true;
                    continue;
                } catch (const Transient&) {
                } catch (const CircuitOpen&) {
                } catch (...) {
                    fail(todo, std::current_exception());
                    break;
                }
            } catch (const Transient&) {
            } catch (const CircuitOpen&) {
            } catch (...) {
                fail(todo, std::current_exception());
                break;
            }
            // The server is away: wait for it (the callers wait with us), unless closing.
            if (!outage) {
                spdlog::warn("store: PostgreSQL at {} is unreachable; {} writes wait for it", where_, todo.size());
                outage = true;
            }
            if (stopping()) {
                fail(todo, std::make_exception_ptr(StoreError(fmt::format(
                               "PostgreSQL at {} stayed unreachable while the store closed; the writes were not "
                               "made",
                               where_))));
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        if (outage) {
            auto waited = std::chrono::steady_clock::now() - outage_start;
            outage_wait_us_.fetch_add(std::chrono::duration_cast<std::chrono::microseconds>(waited).count());
            spdlog::info("store: PostgreSQL at {} is back after {} ms; writes go on", where_,
                         std::chrono::duration_cast<std::chrono::milliseconds>(waited).count());
        }
    }

    void fail(std::vector<Write*>& todo, std::exception_ptr error) {
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            spdlog::error("store: {}", e.what());
        } catch (...) {
        }
        for (auto* w : todo) {
            w->result = WriteResult{};
            w->result.error = error;
        }
    }

    // Converts what a database call threw into Transient / WriteFailed / StoreError.
    [[noreturn]] void classify(const std::shared_ptr<Conn>& conn, const char* doing) {
        try {
            throw;
        } catch (const pqxx::in_doubt_error& e) {
            writer_->report_broken(conn);
            throw InDoubt(fmt::format("the connection to PostgreSQL at {} broke during COMMIT ({})", where_, e.what()));
        } catch (const pqxx::broken_connection& e) {
            writer_->report_broken(conn);
            throw Transient(fmt::format("lost the connection to PostgreSQL at {} while {}: {}", where_, doing, e.what()));
        } catch (const pqxx::sql_error& e) {
            if (connection_gone_sqlstate(e.sqlstate())) writer_->report_broken(conn);
            if (transient_sqlstate(e.sqlstate())) {
                throw Transient(fmt::format("PostgreSQL at {} failed {}: {}", where_, doing, e.what()));
            }
            throw WriteFailed(fmt::format("PostgreSQL at {} failed {}: {}", where_, doing, e.what()));
        }
    }

    // The batch in one round trip: `BEGIN; its statements; COMMIT; NOTIFY` as ONE simple-query
    // message, so a batch costs one round trip, not three. The NOTIFY runs after the COMMIT, in
    // a transaction of its own: PostgreSQL serializes the commits of transactions that notify
    // (a database-wide lock held through the commit's WAL flush), which made every host's
    // commit wait for the others' fsyncs; a transaction that only notifies writes no WAL and
    // holds that lock for a moment. Its price: a connection lost after the message was sent
    // leaves the batch's outcome unknown until the COMMIT's answer is in (the COMMIT is not a
    // message of its own). So a batch holding a write that cannot be settled by reading
    // (OnDoubt::Fail: messages, audit entries, rewinds) keeps its own COMMIT (run_with_commit),
    // where only a loss during COMMIT is in doubt.
    void run_pipelined(std::vector<Write*>& todo) {
        bool settleable =
            std::none_of(todo.begin(), todo.end(), [](const Write* w) { return w->on_doubt == OnDoubt::Fail; });
        if (!settleable) return run_with_commit(todo);
        auto conn = writer_->get();
        // Set while the COMMIT's answer is awaited. An error answer to a statement before it
        // means the server rolled the batch back (and skipped the rest of the message).
        bool commit_pending = false;
        pqxx::result numbering;
        try {
            pqxx::nontransaction tx(*conn);
            std::vector<pqxx::result> results(todo.size()), pre_results(todo.size());
            {
                pqxx::pipeline p(tx);
                p.retain(static_cast<int>(2 * todo.size()) + 6);
                auto begin = p.insert("BEGIN");
                std::vector<pqxx::pipeline::query_id> ids, pre_ids(todo.size());
                ids.reserve(todo.size());
                for (std::size_t i = 0; i < todo.size(); ++i) {
                    if (!todo[i]->pre.empty()) pre_ids[i] = p.insert(todo[i]->pre);
                    ids.push_back(p.insert(todo[i]->sql));
                }
                std::vector<pqxx::pipeline::query_id> tail_ids;
                for (const auto& q : batch_tail()) tail_ids.push_back(p.insert(q));
                auto commit = p.insert("COMMIT");
                auto notify = p.insert("SELECT pg_notify('durable_changes', '')");
                p.retrieve(begin);
                for (std::size_t i = 0; i < todo.size(); ++i) {
                    if (!todo[i]->pre.empty()) pre_results[i] = p.retrieve(pre_ids[i]);
                    results[i] = p.retrieve(ids[i]);
                }
                numbering = p.retrieve(tail_ids.front());
                for (std::size_t i = 1; i < tail_ids.size(); ++i) p.retrieve(tail_ids[i]);
                commit_pending = true;
                p.retrieve(commit);
                commit_pending = false;
                try {
                    p.retrieve(notify);
                } catch (const pqxx::failure& e) {
                    // Committed; only the wake-up of other processes is lost (they poll too).
                    spdlog::warn("store: notifying other processes of a commit on {} failed: {}", where_, e.what());
                    writer_->report_broken(conn);
                }
            }
            for (std::size_t i = 0; i < todo.size(); ++i) {
                todo[i]->result = WriteResult{};
                todo[i]->parse(results[i], todo[i]->result);
                if (!todo[i]->pre.empty()) todo[i]->parse_pre(pre_results[i], todo[i]->result);
            }
        } catch (const pqxx::sql_error& e) {
            // No SQLSTATE is libpq's own error (the connection), not an answer of the server.
            if (e.sqlstate().empty() || (commit_pending && connection_gone_sqlstate(e.sqlstate()))) {
                writer_->report_broken(conn);
                throw InDoubt(fmt::format("the connection to PostgreSQL at {} broke as a batch committed ({})", where_,
                                          e.what()));
            }
            // Rolled back; the session is left in the failed transaction block: end it.
            try {
                pqxx::nontransaction rb(*conn);
                rb.exec("ROLLBACK");
            } catch (const std::exception&) {
                writer_->report_broken(conn);
            }
            classify(conn, "writing");
        } catch (const pqxx::failure& e) {
            // No answer: the server may have run and committed all of it.
            writer_->report_broken(conn);
            throw InDoubt(fmt::format("the connection to PostgreSQL at {} broke while a batch ran ({})", where_,
                                      e.what()));
        }
        numbered(numbering);
        commits_.fetch_add(1, std::memory_order_relaxed);
        ops_.fetch_add(static_cast<std::int64_t>(todo.size()), std::memory_order_relaxed);
    }

    // One transaction with a COMMIT of its own, the statements in one round trip.
    void run_with_commit(std::vector<Write*>& todo) {
        auto conn = writer_->get();
        pqxx::result numbering;
        try {
            pqxx::work tx(*conn);
            std::vector<pqxx::result> results(todo.size()), pre_results(todo.size());
            {
                pqxx::pipeline p(tx);
                p.retain(static_cast<int>(2 * todo.size()) + 4);
                std::vector<pqxx::pipeline::query_id> ids, pre_ids(todo.size());
                ids.reserve(todo.size());
                for (std::size_t i = 0; i < todo.size(); ++i) {
                    if (!todo[i]->pre.empty()) pre_ids[i] = p.insert(todo[i]->pre);
                    ids.push_back(p.insert(todo[i]->sql));
                }
                auto tail = batch_tail();
                std::vector<pqxx::pipeline::query_id> tail_ids;
                for (const auto& q : tail) tail_ids.push_back(p.insert(q));
                for (std::size_t i = 0; i < todo.size(); ++i) {
                    if (!todo[i]->pre.empty()) pre_results[i] = p.retrieve(pre_ids[i]);
                    results[i] = p.retrieve(ids[i]);
                }
                numbering = p.retrieve(tail_ids.front());
                for (std::size_t i = 1; i < tail_ids.size(); ++i) p.retrieve(tail_ids[i]);
            }
            for (std::size_t i = 0; i < todo.size(); ++i) {
                todo[i]->result = WriteResult{};
                todo[i]->parse(results[i], todo[i]->result);
                if (!todo[i]->pre.empty()) todo[i]->parse_pre(pre_results[i], todo[i]->result);
            }
            tx.commit();
        } catch (const pqxx::failure&) {
            classify(conn, "writing");
        }
        notify_after_commit(*conn);
        numbered(numbering);
        commits_.fetch_add(1, std::memory_order_relaxed);
        ops_.fetch_add(static_cast<std::int64_t>(todo.size()), std::memory_order_relaxed);
    }

    // The batch again, each write in a savepoint, so a failing one fails alone.
    void run_isolated(std::vector<Write*>& todo) {
        auto conn = writer_->get();
        pqxx::result numbering;
        try {
            pqxx::work tx(*conn);
            for (auto* w : todo) {
                w->result = WriteResult{};
                try {
                    pqxx::subtransaction sub(tx, "durable_write");
                    pqxx::result pre;
                    if (!w->pre.empty()) pre = sub.exec(w->pre);
                    auto r = sub.exec(w->sql);
                    w->parse(r, w->result);
                    if (!w->pre.empty()) w->parse_pre(pre, w->result);
                    sub.commit();
                } catch (const pqxx::sql_error& e) {
                    if (transient_sqlstate(e.sqlstate())) throw;
                    w->result = WriteResult{};
                    w->result.error = std::make_exception_ptr(
                        StoreError(fmt::format("PostgreSQL at {} refused a write: {}", where_, e.what())));
                }
            }
            auto tail = batch_tail();
            for (std::size_t i = 0; i < tail.size(); ++i) {
                auto r = tx.exec(tail[i]);
                if (i == 0) numbering = r;
            }
            tx.commit();
        } catch (const pqxx::failure&) {
            classify(conn, "writing");
        }
        notify_after_commit(*conn);
        numbered(numbering);
        commits_.fetch_add(1, std::memory_order_relaxed);
        ops_.fetch_add(static_cast<std::int64_t>(todo.size()), std::memory_order_relaxed);
    }

    // What ends every batch: numbering its change-feed rows; about once a second, pruning the
    // feed (on the server's clock).
    std::vector<std::string> batch_tail() {
        std::vector<std::string> out{"EXECUTE durable_number_changes"};
        // The deleted rows of pending_changes stay behind as dead tuples (no autovacuum for
        // temporary tables): drop them once in a while, emptied by the statement just before.
        if (++batches_since_truncate_ >= 512) {
            batches_since_truncate_ = 0;
            out.push_back("TRUNCATE pending_changes");
        }
        auto now = std::chrono::steady_clock::now();
        if (now >= next_prune_) {
            next_prune_ = now + std::chrono::seconds(1);
            out.push_back(Call("durable_prune_changes")
                              .num(this->now() - options_.change_feed_max_age_ms)
                              .num(options_.change_feed_max_rows)
                              .done());
        }
        return out;
    }

    // Wakes other processes' listeners after a commit (outside it: see run_pipelined).
    void notify_after_commit(Conn& conn) {
        try {
            pqxx::nontransaction tx(conn);
            tx.exec("SELECT pg_notify('durable_changes', '')");
        } catch (const std::exception& e) {
            spdlog::warn("store: notifying other processes of a commit on {} failed: {}", where_, e.what());
        }
    }

    // What a committed batch's durable_number_changes answered: rows it parked are owed a
    // numbering pass until a pass of this writer holds the lock (commit_loop runs one when idle).
    void numbered(const pqxx::result& r) {
        if (r.empty()) return;
        bool locked = r[0][0].as<std::int64_t>() > 0;
        bool parked = r[0][1].as<std::int64_t>() > 0;
        numbering_owed_ = parked || (numbering_owed_ && !locked);
    }

    // A batch with no write of its own: its tail numbers parked change-feed rows.
    void run_numbering_pass() {
        Write w;
        w.sql = "SELECT 1";
        w.parse = [](const pqxx::result&, WriteResult& out) { out.ok = true; };
        std::vector<Write*> todo{&w};
        execute(todo);
    }

    // After a COMMIT with no answer: settles each write from what the database holds, and
    // leaves in `todo` only those to run again.
    void resolve(std::vector<Write*>& todo) {
        auto conn = writer_->get();
        std::vector<Write*> again;
        try {
            pqxx::nontransaction tx(*conn);
            for (auto* w : todo) {
                w->result = WriteResult{};
                switch (w->on_doubt) {
                    case OnDoubt::Rerun: again.push_back(w); break;
                    case OnDoubt::Read:
                        if (!w->resolve(tx, w->result)) {
                            w->result = WriteResult{};
                            again.push_back(w);
                        }
                        break;
                    case OnDoubt::Fail:
                        w->result.error = std::make_exception_ptr(StoreError(fmt::format(
                            "the connection to PostgreSQL at {} broke while this write was being committed, so "
                            "whether it was made is unknown; look before trying it again",
                            where_)));
                        break;
                }
            }
        } catch (const pqxx::failure&) {
            classify(conn, "resolving writes of unknown outcome");
        }
        todo = std::move(again);
    }

    // ---- the listener: other processes' commits, and the server's clock ----
    class Receiver final : public pqxx::notification_receiver {
    public:
        Receiver(pqxx::connection_base& c, std::atomic<std::int64_t>& changes)
            : pqxx::notification_receiver(c, "durable_changes"), changes_(changes) {}
        void operator()(const std::string&, int) override { changes_.fetch_add(1, std::memory_order_relaxed); }

    private:
        std::atomic<std::int64_t>& changes_;
    };

    void watch_loop() {
        std::shared_ptr<Conn> conn;
        std::unique_ptr<Receiver> receiver;
        auto next_clock = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        for (;;) {
            {
                std::unique_lock lock(watch_mu_);
                if (watch_stopping_) break;
            }
            try {
                if (!conn) {
                    conn = listener_->get();
                    receiver = std::make_unique<Receiver>(*conn, changes_);
                    changes_.fetch_add(1);  // commits may have been missed while away
                }
                conn->await_notification(0, 200'000);
                if (std::chrono::steady_clock::now() >= next_clock) {
                    measure_clock(*conn);
                    next_clock = std::chrono::steady_clock::now() + std::chrono::seconds(5);
                }
            } catch (const std::exception& e) {
                spdlog::debug("store: the change listener on {} reconnects: {}", where_, e.what());
                receiver.reset();
                if (conn) listener_->report_broken(conn);
                conn.reset();
                std::unique_lock lock(watch_mu_);
                watch_cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return watch_stopping_; });
            }
        }
        try {
            receiver.reset();
        } catch (...) {
        }
    }

    const std::string conninfo_, where_;
    const PostgresOptions options_;
    std::string server_version_, synchronous_commit_;
    ResiliencePipeline read_pipeline_, write_pipeline_;

    std::unique_ptr<ConnProvider> writer_;  // used by the commit thread only
    std::unique_ptr<ConnProvider> listener_;  // used by the watch thread only
    std::vector<std::unique_ptr<ConnProvider>> readers_;

    std::mutex reader_mu_;
    std::condition_variable reader_cv_;
    std::vector<bool> reader_busy_;  // guarded by reader_mu_

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Write> queue_;  // guarded by mu_
    bool stopping_ = false;    // guarded by mu_
    std::thread commit_thread_;

    std::mutex watch_mu_;
    std::condition_variable watch_cv_;
    bool watch_stopping_ = false;  // guarded by watch_mu_
    std::thread watch_thread_;

    std::atomic<std::int64_t> offset_us_{0}, changes_{0}, commits_{0}, ops_{0}, outage_wait_us_{0};
    std::chrono::steady_clock::time_point next_prune_{};  // used by the commit thread only
    int batches_since_truncate_ = 0;                     // used by the commit thread only
    bool numbering_owed_ = false;  // this writer parked change-feed rows; used by the commit thread only
};

}  // namespace
}  // namespace postgres

std::shared_ptr<Store> open_postgres(const std::string& conninfo, const PostgresOptions& options) {
    return std::make_shared<postgres::PostgresStore>(conninfo, options);
}

}  // namespace durable::store
