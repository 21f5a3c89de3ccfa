// The non-template parts of durable/task.hpp: the current frame owner, when_any's state,
// when_all over Task<void>.
#include "durable/task.hpp"

namespace durable {
namespace detail {

namespace {
thread_local FrameOwner* current_owner = nullptr;
}

FrameOwner* current_frame_owner() noexcept {
    return current_owner;
}

FrameOwner* exchange_current_frame_owner(FrameOwner* owner) noexcept {
    return std::exchange(current_owner, owner);
}

std::string describe_json_type_error(const std::exception& e) {
    return std::string("JSON value has the wrong shape: ") + e.what();
}

std::shared_ptr<State<std::size_t>> first_of(const std::vector<std::shared_ptr<StateBase>>& states) {
    auto result = std::make_shared<State<std::size_t>>();
    for (std::size_t i = 0; i < states.size(); ++i) {
        if (states[i]->done) {
            result->value = i;
            result->done = true;
            return result;
        }
    }
    for (std::size_t i = 0; i < states.size(); ++i) {
        // Holds the result weakly: the losers' states outlive the when_any.
        std::weak_ptr<State<std::size_t>> weak = result;
        states[i]->listeners.push_back([weak, i] {
            if (auto r = weak.lock(); r && !r->done) {
                r->value = i;
                r->finish();
            }
        });
    }
    return result;
}

}  // namespace detail

Task<void> when_all(std::vector<Task<void>> tasks) {
    std::exception_ptr first_error;
    for (auto& t : tasks) {
        try {
            co_await std::move(t);
        } catch (...) {
            if (!first_error) first_error = std::current_exception();
        }
    }
    if (first_error) std::rethrow_exception(first_error);
}

}  // namespace durable
