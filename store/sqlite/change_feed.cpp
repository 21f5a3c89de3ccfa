// SQL of the change feed: reading it in order and pruning it.
//
// Rows are appended by commit_episode (writes.cpp) inside the commit's transaction. Pruning
// deletes a prefix of the sequence and never the newest row, so `seq` (an INTEGER PRIMARY
// KEY: max + 1 on insert) keeps growing without holes; a follower that sees the sequence jump
// knows exactly how many rows it lost.
#include "store/sqlite/sql.hpp"

namespace durable::store::sqlite::sql {

std::vector<ChangeRow> read_changes(Connection& c, std::int64_t after_seq, int limit) {
    std::vector<ChangeRow> out;
    auto s = c.stmt(
        "SELECT seq, at, instance_id, name, status, first_seq, count FROM change_feed WHERE seq > ? "
        "ORDER BY seq LIMIT ?");
    s->bind(1, static_cast<std::int64_t>(after_seq));
    s->bind(2, limit);
    while (s->executeStep()) {
        ChangeRow r;
        r.seq = s->getColumn(0).getInt64();
        r.at = s->getColumn(1).getInt64();
        r.instance_id = s->getColumn(2).getString();
        r.name = s->getColumn(3).getString();
        r.status = status_from_string(s->getColumn(4).getString()).value_or(Status::Running);
        r.first_seq = s->getColumn(5).getInt64();
        r.count = s->getColumn(6).getInt64();
        out.push_back(std::move(r));
    }
    return out;
}

std::int64_t change_feed_head(Connection& c) {
    auto s = c.stmt("SELECT COALESCE(MAX(seq), 0) FROM change_feed");
    s->executeStep();
    return s->getColumn(0).getInt64();
}

void prune_change_feed(Connection& c, Millis cutoff, std::int64_t max_rows) {
    std::int64_t head = change_feed_head(c);
    if (head == 0) return;
    std::int64_t cut = head - max_rows + 1;  // rows below it are beyond the count
    // The age bound: the first row young enough, looking at a bounded prefix only (times
    // grow with seq; a prefix that is all old is pruned now and the rest next time).
    auto s = c.stmt("SELECT seq, at FROM change_feed ORDER BY seq LIMIT 2000");
    std::int64_t last = 0;
    bool young = false;
    while (s->executeStep()) {
        last = s->getColumn(0).getInt64();
        if (s->getColumn(1).getInt64() >= cutoff) {
            young = true;
            break;
        }
    }
    s->reset();
    std::int64_t age_cut = young ? last : last + 1;
    cut = std::min(std::max(cut, age_cut), head);
    auto d = c.stmt("DELETE FROM change_feed WHERE seq < ?");
    d->bind(1, static_cast<std::int64_t>(cut));
    d->exec();
}

}  // namespace durable::store::sqlite::sql
