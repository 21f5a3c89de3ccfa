// The rewound ranges of a history (see rewind.hpp).
#include "runtime/rewind.hpp"

#include "runtime/history.hpp"

namespace durable::detail {

std::size_t rewind_start(const std::vector<nlohmann::json>& history, std::size_t begin, std::size_t end) {
    std::size_t failed = end;
    for (std::size_t i = end; i > begin; --i) {
        const auto& e = history[i - 1];
        if (ev::type_of(e) == ev::kExecutionCompleted && e.value("status", "") == "Failed") {
            failed = i - 1;
            break;
        }
    }
    if (failed == end) return end;
    // The task whose failure the orchestrator let through, as the failure record names it.
    const auto& error = history[failed].value("error", nlohmann::json::object());
    auto task = error.is_object() ? error.find("task") : error.end();
    if (!error.is_object() || task == error.end() || !task->is_object()) return failed;
    auto id = task->value("id", std::int64_t{-1});
    if (id < 0) return failed;
    for (std::size_t i = failed; i > begin; --i) {
        const auto& e = history[i - 1];
        auto t = ev::type_of(e);
        if ((t == ev::kTaskFailed || t == ev::kSubOrchestrationFailed) && e.value("id", std::int64_t{-1}) == id) {
            return i - 1;
        }
    }
    return failed;
}

std::vector<bool> rewound_events(const std::vector<nlohmann::json>& history) {
    std::vector<bool> skip(history.size(), false);
    std::size_t segment = 0;
    for (std::size_t i = 0; i < history.size(); ++i) {
        if (ev::type_of(history[i]) != ev::kExecutionRewound) continue;
        for (std::size_t j = rewind_start(history, segment, i); j < i; ++j) skip[j] = true;
        segment = i + 1;
    }
    return skip;
}

}  // namespace durable::detail
