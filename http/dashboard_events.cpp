// /api/v1/events: the dashboard's live stream (Server-Sent Events) of committed history
// events, read from the process's event distributor, which follows the database's change feed
// (so what other processes commit arrives as well as this one's).
//
// Framing: one message per change-feed row (the events one commit wrote), `id:` the row's
// feed sequence, `event: commit`, `data:` {"feed_seq", "events": [{instance, name, status,
// seq, event}]}. Events of one row reach the distributor in one publish, so a row is sent
// whole: it is flushed when an event of the next row arrives or the stream falls quiet.
//
// Resuming: the distributor resumes by its own offsets, which belong to this process, while
// the client only knows feed sequences. Every stream records, for each row it sent, the
// offset of the row's last event in one shared bounded index (feed seq -> offset; offsets are
// the same for every subscriber of the one distributor). A client reconnecting with
// Last-Event-ID F resumes after that offset: the distributor's ring replays what followed,
// without loss or duplicate. When F is not in the index (this process restarted, or the row
// is too old) or the ring no longer holds what followed (the distributor reports a gap), the
// client gets `event: refetch` and reloads what it shows from the API: the gap is filled from
// the store rather than left silent.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <map>
#include <mutex>

#include "durable/errors.hpp"
#include "http/dashboard_parts.hpp"

namespace durable::http::detail {
namespace {

using Json = nlohmann::json;

// feed seq -> offset of the last event sent for that row (the largest any stream recorded).
class ResumeIndex {
public:
    void record(std::int64_t feed_seq, std::uint64_t offset) {
        std::lock_guard lock(mu_);
        auto& o = offsets_[feed_seq];
        o = std::max(o, offset);
        while (offsets_.size() > kCapacity) offsets_.erase(offsets_.begin());
    }
    std::optional<std::uint64_t> find(std::int64_t feed_seq) const {
        std::lock_guard lock(mu_);
        auto it = offsets_.find(feed_seq);
        if (it == offsets_.end()) return std::nullopt;
        return it->second;
    }

private:
    static constexpr std::size_t kCapacity = 100'000;
    mutable std::mutex mu_;
    std::map<std::int64_t, std::uint64_t> offsets_;  // guarded by mu_
};

struct StreamState {
    StreamState(Database d, DashboardOptions o) : db(std::move(d)), options(o) {}
    Database db;
    DashboardOptions options;
    ResumeIndex index;
    std::atomic<std::size_t> open_streams{0};
};

std::optional<std::int64_t> parse_event_id(const std::string& text) {
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < 0) return std::nullopt;
    return v;
}

std::string refetch_message(const std::string& reason) {
    return fmt::format("event: refetch\ndata: {}\n\n", Json{{"reason", reason}}.dump());
}

class RowWriter {
public:
    RowWriter(StreamSink& sink, ResumeIndex& index) : sink_(sink), index_(index) {}

    // Adds `e`; a new row flushes the previous one. False when the client is gone.
    bool add(const std::shared_ptr<const WatchEvent>& e) {
        if (!rows_.empty() && rows_.back()->feed_seq != e->feed_seq && !flush()) return false;
        rows_.push_back(e);
        return true;
    }
    bool pending() const { return !rows_.empty(); }
    bool flush() {
        if (rows_.empty()) return true;
        // Written straight to text: copying each event into a new JSON tree first cost more
        // than the writing.
        const auto feed_seq = rows_.back()->feed_seq;
        const auto offset = rows_.back()->offset;
        std::string text = fmt::format("id: {}\nevent: commit\ndata: {{\"feed_seq\":{},\"events\":[", feed_seq, feed_seq);
        auto str = [](const std::string& v) { return Json(v).dump(-1, ' ', false, Json::error_handler_t::replace); };
        for (std::size_t i = 0; i < rows_.size(); ++i) {
            const auto& e = *rows_[i];
            if (i) text += ',';
            text += "{\"instance\":" + str(e.instance_id) + ",\"name\":" + str(e.name) + ",\"status\":" + str(e.status) +
                    ",\"seq\":" + std::to_string(e.seq) +
                    ",\"event\":" + e.event.dump(-1, ' ', false, Json::error_handler_t::replace) + "}";
        }
        text += "]}\n\n";
        rows_.clear();
        bool ok = sink_.write(text);
        if (ok) index_.record(feed_seq, offset);
        return ok;
    }

private:
    StreamSink& sink_;
    ResumeIndex& index_;
    std::vector<std::shared_ptr<const WatchEvent>> rows_;
};

void serve_stream(StreamState& state, const std::string& instance, std::optional<std::int64_t> last_id,
                  StreamSink& sink) {
    SubscribeOptions so;
    so.instance_id = instance;
    so.queue_capacity = 4096;
    so.overflow = OverflowPolicy::DropOldest;
    std::string refetch;
    if (last_id) {
        if (auto offset = state.index.find(*last_id)) {
            so.resume_after_offset = *offset;
        } else {
            refetch = fmt::format("cannot resume after feed row {} here (unknown to this process or too old)", *last_id);
        }
    }
    std::shared_ptr<Subscription> sub;
    try {
        sub = state.db.events()->subscribe(so);
    } catch (const InvalidInput& e) {
        so.resume_after_offset.reset();
        sub = state.db.events()->subscribe(so);
        refetch = e.what();
    }
    if (!sink.write(fmt::format("retry: 2000\nevent: ready\ndata: {}\n\n",
                                Json{{"resumed", so.resume_after_offset.has_value()}}.dump()))) {
        return;
    }
    if (!refetch.empty() && !sink.write(refetch_message(refetch))) return;
    RowWriter rows(sink, state.index);
    auto last_write = std::chrono::steady_clock::now();
    // Short waits while a row may still be growing, longer ones (bounded, so a stopping
    // server or a dead client is noticed) when idle.
    while (sink.open()) {
        auto item = sub->next(rows.pending() ? std::chrono::milliseconds(15) : std::chrono::milliseconds(500));
        if (!item) {
            if (rows.pending()) {
                if (!rows.flush()) break;
                last_write = std::chrono::steady_clock::now();
            } else if (std::chrono::steady_clock::now() - last_write >= state.options.keepalive) {
                if (!sink.write(": keepalive\n\n")) break;
                last_write = std::chrono::steady_clock::now();
            }
            continue;
        }
        if (auto* e = std::get_if<std::shared_ptr<const WatchEvent>>(&*item)) {
            if (!rows.add(*e)) break;
        } else if (auto* gap = std::get_if<WatchGap>(&*item)) {
            if (!rows.flush() || !sink.write(refetch_message(gap->reason))) break;
            last_write = std::chrono::steady_clock::now();
        } else {
            rows.flush();
            break;  // the distributor stopped
        }
    }
    sub->close();
}

}  // namespace

void add_event_stream(HttpServer& server, const Database& db, const DashboardOptions& options) {
    auto state = std::make_shared<StreamState>(db, options);
    server.route("GET", "/api/v1/events", [state](const Request& req, Response& res) {
        for (const auto& [k, v] : req.query) {
            if (k != "instance" && k != "last_event_id") {
                json_error(res, 400, "bad_parameter", fmt::format("unknown parameter '{}' (known: instance, last_event_id)", k));
                return;
            }
        }
        std::string last = req.header("Last-Event-ID");
        if (last.empty()) {
            if (auto it = req.query.find("last_event_id"); it != req.query.end()) last = it->second;
        }
        std::optional<std::int64_t> last_id;
        if (!last.empty()) {
            last_id = parse_event_id(last);
            if (!last_id) {
                json_error(res, 400, "bad_parameter", fmt::format("Last-Event-ID '{}' is not a change-feed sequence", last));
                return;
            }
        }
        if (state->open_streams.fetch_add(1) >= state->options.max_streams) {
            state->open_streams.fetch_sub(1);
            json_error(res, 503, "too_many_streams",
                       fmt::format("{} live streams are open already; close a page and retry", state->options.max_streams));
            res.headers.emplace_back("Retry-After", "5");
            return;
        }
        std::string instance;
        if (auto it = req.query.find("instance"); it != req.query.end()) instance = it->second;
        res.content_type = "text/event-stream";
        res.headers.emplace_back("Cache-Control", "no-store");
        res.headers.emplace_back("X-Accel-Buffering", "no");
        // The stream's slot is taken now and given back when the stream (or, if it never ran,
        // the response holding it) is gone.
        std::shared_ptr<StreamState> slot(state.get(), [state](StreamState*) { state->open_streams.fetch_sub(1); });
        res.stream = [slot, instance, last_id](StreamSink& sink) { serve_stream(*slot, instance, last_id, sink); };
    });
}

}  // namespace durable::http::detail
