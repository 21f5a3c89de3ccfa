// Schedule steps: ticks due, the catch-up window, the overlap policy and jitter.
#include "runtime/schedule_plan.hpp"

#include <fmt/format.h>

#include "durable/client.hpp"
#include "durable/cron.hpp"
#include "durable/errors.hpp"
#include "runtime/history.hpp"

namespace durable {

const char* to_string(Overlap o) {
    switch (o) {
        case Overlap::Skip: return "skip";
        case Overlap::BufferOne: return "buffer_one";
        case Overlap::AllowAll: return "allow_all";
    }
    return "skip";
}

std::optional<Overlap> overlap_from_string(std::string_view s) {
    if (s == "skip") return Overlap::Skip;
    if (s == "buffer_one") return Overlap::BufferOne;
    if (s == "allow_all") return Overlap::AllowAll;
    return std::nullopt;
}

namespace detail {

std::string tick_instance_id(const std::string& schedule_id, store::Millis tick) {
    return schedule_id + "@" + format_utc(tick);
}

store::Millis tick_jitter(const std::string& schedule_id, store::Millis tick, store::Millis jitter_ms) {
    if (jitter_ms <= 0) return 0;
    // FNV-1a over the id and the tick, then a final mix: stable across hosts and builds.
    std::uint64_t h = 14695981039346656037ull;
    auto mix = [&h](unsigned char byte) {
        h ^= byte;
        h *= 1099511628211ull;
    };
    for (char ch : schedule_id) mix(static_cast<unsigned char>(ch));
    for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>((static_cast<std::uint64_t>(tick) >> (8 * i)) & 0xff));
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return static_cast<store::Millis>(h % (static_cast<std::uint64_t>(jitter_ms) + 1));
}

store::NewInstance schedule_instance(const store::ScheduleRow& row, const std::string& id, store::Millis now,
                                     store::Millis start_at, const std::string& actor) {
    store::NewInstance inst;
    inst.id = id;
    inst.name = row.orchestration;
    inst.execution_id = new_instance_id();
    inst.input = row.input ? *row.input : std::string("null");
    inst.now = now;
    inst.start_at = start_at;
    Json start = ev::make(ev::kExecutionStarted, now);
    start["name"] = row.orchestration;
    try {
        start["input"] = row.input ? Json::parse(*row.input) : Json();
    } catch (const std::exception&) {
        start["input"] = *row.input;
    }
    start["cid"] = id;
    inst.start_event = start.dump();
    inst.actor = actor;
    return inst;
}

std::optional<store::ScheduleUpdate> plan_schedule_step(const store::ScheduleRow& row, store::Millis now,
                                                        const std::function<bool(const std::string&)>& running,
                                                        const std::string& actor, StepLimits limits) {
    if (row.paused) return std::nullopt;
    store::ScheduleUpdate u;
    u.row = row;
    u.row.updated_at = now;
    auto& next = u.row;
    bool changed = false;
    bool last_running = row.last_instance_id && running(*row.last_instance_id);
    auto start = [&](store::Millis tick, store::Millis start_at) {
        auto id = tick_instance_id(row.id, tick);
        u.instances.push_back(schedule_instance(row, id, now, start_at, actor));
        next.last_instance_id = id;
        ++next.fired;
        last_running = true;
    };
    // A buffered tick starts once the instance it waited for has finished.
    if (next.buffered_tick && !last_running) {
        start(*next.buffered_tick, now);
        next.buffered_tick.reset();
        changed = true;
    }
    if (!next.next_fire || *next.next_fire > now) {
        if (!changed) return std::nullopt;
        return u;
    }
    std::optional<CronExpression> cron;
    try {
        cron = CronExpression::parse(row.cron);
    } catch (const InvalidInput& e) {
        next.paused = true;
        next.note = fmt::format("paused by the scheduler: {}", e.what());
        next.next_fire.reset();
        return u;
    }
    const auto overlap = overlap_from_string(row.overlap).value_or(Overlap::Skip);
    const store::Millis oldest = now - row.catchup_window_ms;
    int ticks = 0, missed = 0;
    while (next.next_fire && *next.next_fire <= now && ticks < limits.max_ticks && missed < limits.max_missed) {
        const store::Millis tick = *next.next_fire;
        if (tick < oldest) {
            ++next.missed;
            ++missed;
        } else {
            ++ticks;
            switch (overlap) {
                case Overlap::AllowAll:
                    start(tick, tick + tick_jitter(row.id, tick, row.jitter_ms));
                    break;
                case Overlap::Skip:
                    if (last_running) {
                        ++next.skipped;
                    } else {
                        start(tick, tick + tick_jitter(row.id, tick, row.jitter_ms));
                    }
                    break;
                case Overlap::BufferOne:
                    if (!last_running) {
                        start(tick, tick + tick_jitter(row.id, tick, row.jitter_ms));
                    } else if (!next.buffered_tick) {
                        next.buffered_tick = tick;
                    } else {
                        ++next.skipped;
                    }
                    break;
            }
        }
        next.last_fire = tick;
        next.next_fire = cron->next_after(tick);
        changed = true;
    }
    if (!changed) return std::nullopt;
    return u;
}

}  // namespace detail
}  // namespace durable
