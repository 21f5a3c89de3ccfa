// durable/task.hpp — Task<T>, the awaitable of orchestrator code, and when_all / when_any.
//
// A Task<T> is the result of something an orchestrator started: an activity call, a timer,
// an external event, a sub-orchestration, or a coroutine of its own returning Task<T>.
// Tasks are EAGER, like C#'s Task: calling `ctx.call_activity(...)` schedules the activity
// at once, and a coroutine returning Task<T> runs until its first suspension before the
// call returns. `co_await task` suspends until it is done and yields its value or rethrows
// its failure (activity failures arrive as durable::TaskFailed).
//
// A Task may be awaited by one coroutine at a time. Tasks belong to one orchestration
// instance and are used only on the thread running it (no locking inside).
//
// Coroutine frames are owned by the instance: a finished frame frees itself; frames still
// suspended when the instance is evicted or its host loses the lease are destroyed by the
// runtime through their handles, which runs the destructors of their locals.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "durable/errors.hpp"

namespace durable {

template <class T>
class Task;

namespace detail {

// The owner of the coroutine frames of one orchestration execution.
class FrameOwner {
public:
    virtual ~FrameOwner() = default;
    virtual void adopt(std::coroutine_handle<> frame) = 0;
    virtual void release(std::coroutine_handle<> frame) = 0;
};

// The FrameOwner of the orchestration running on this thread, or null.
FrameOwner* current_frame_owner() noexcept;
// Sets it (the runtime does, around every resumption); returns the previous one.
FrameOwner* exchange_current_frame_owner(FrameOwner* owner) noexcept;

// The completion state a Task refers to.
struct StateBase {
    virtual ~StateBase() = default;
    bool done = false;
    std::exception_ptr error;
    std::coroutine_handle<> waiter;                 // the coroutine awaiting this, if any
    std::vector<std::function<void()>> listeners;   // when_any and friends

    // Completes with a JSON value (converted to T by State<T>).
    virtual void set_json(const nlohmann::json& value) = 0;
    void set_error(std::exception_ptr e) {
        error = std::move(e);
        finish();
    }
    void finish() {
        done = true;
        auto w = std::exchange(waiter, {});
        auto ls = std::move(listeners);
        listeners.clear();
        for (auto& l : ls) l();
        if (w) w.resume();
    }
    // Marks done and hands back the waiter, for symmetric transfer at a coroutine's end.
    std::coroutine_handle<> finish_for_transfer() {
        done = true;
        auto w = std::exchange(waiter, {});
        auto ls = std::move(listeners);
        listeners.clear();
        for (auto& l : ls) l();
        return w ? w : std::noop_coroutine();
    }
};

std::string describe_json_type_error(const std::exception& e);

template <class T>
struct State final : StateBase {
    std::optional<T> value;
    void set_json(const nlohmann::json& v) override {
        try {
            value = v.template get<T>();
        } catch (const std::exception& e) {
            error = std::make_exception_ptr(InvalidInput(describe_json_type_error(e)));
        }
        finish();
    }
};

template <>
struct State<void> final : StateBase {
    void set_json(const nlohmann::json&) override { finish(); }
};

struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
        auto state = h.promise().state;  // keeps the state alive past the frame
        FrameOwner* owner = h.promise().owner;
        owner->release(h);
        h.destroy();
        return state->finish_for_transfer();
    }
    void await_resume() noexcept {}
};

template <class T>
struct PromiseBase {
    std::shared_ptr<State<T>> state = std::make_shared<State<T>>();
    FrameOwner* owner = current_frame_owner();

    PromiseBase() {
        if (!owner) {
            throw std::logic_error(
                "a durable::Task coroutine was called outside an orchestration; orchestrator code "
                "runs only on the host, started by the runtime");
        }
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    FinalAwaiter final_suspend() noexcept { return {}; }
    void unhandled_exception() noexcept { state->error = std::current_exception(); }
};

template <class T>
struct Promise : PromiseBase<T> {
    Task<T> get_return_object();
    template <class U>
    void return_value(U&& v) {
        this->state->value.emplace(std::forward<U>(v));
    }
};

template <>
struct Promise<void> : PromiseBase<void> {
    Task<void> get_return_object();
    void return_void() noexcept {}
};

template <class T, bool Move>
struct TaskAwaiter {
    std::shared_ptr<State<T>> s;
    bool await_ready() const noexcept { return s->done; }
    void await_suspend(std::coroutine_handle<> h) {
        if (s->waiter) throw std::logic_error("a durable::Task can be awaited by one coroutine at a time");
        s->waiter = h;
    }
    T await_resume() {
        if (s->error) std::rethrow_exception(s->error);
        if constexpr (!std::is_void_v<T>) {
            if constexpr (Move) {
                return std::move(*s->value);
            } else {
                return *s->value;
            }
        }
    }
};

// A completed state holding `index`, fired when the first of `states` completes.
std::shared_ptr<State<std::size_t>> first_of(const std::vector<std::shared_ptr<StateBase>>& states);

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
public:
    using promise_type = detail::Promise<T>;
    using value_type = T;

    Task() = default;
    explicit Task(std::shared_ptr<detail::State<T>> s) : state_(std::move(s)) {}

    // True once the task has a value or a failure.
    bool is_done() const noexcept { return state_ && state_->done; }
    // True once the task failed.
    bool is_failed() const noexcept { return state_ && state_->done && state_->error; }

    auto operator co_await() const& { return detail::TaskAwaiter<T, false>{checked()}; }
    auto operator co_await() && { return detail::TaskAwaiter<T, true>{checked()}; }

    const std::shared_ptr<detail::State<T>>& state() const noexcept { return state_; }

private:
    const std::shared_ptr<detail::State<T>>& checked() const {
        if (!state_) throw std::logic_error("co_await on an empty durable::Task");
        return state_;
    }
    std::shared_ptr<detail::State<T>> state_;
};

namespace detail {
template <class T>
Task<T> Promise<T>::get_return_object() {
    this->owner->adopt(std::coroutine_handle<Promise<T>>::from_promise(*this));
    return Task<T>(this->state);
}
inline Task<void> Promise<void>::get_return_object() {
    this->owner->adopt(std::coroutine_handle<Promise<void>>::from_promise(*this));
    return Task<void>(this->state);
}
}  // namespace detail

// Waits for every task; yields their values in order. If any failed, rethrows the failure of
// the first failed task (by position) after all have finished.
template <class T>
Task<std::vector<T>> when_all(std::vector<Task<T>> tasks) {
    std::vector<std::optional<T>> values(tasks.size());
    std::exception_ptr first_error;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        try {
            values[i].emplace(co_await std::move(tasks[i]));
        } catch (...) {
            if (!first_error) first_error = std::current_exception();
        }
    }
    if (first_error) std::rethrow_exception(first_error);
    std::vector<T> out;
    out.reserve(values.size());
    for (auto& v : values) out.push_back(std::move(*v));
    co_return out;
}

// Waits for every task of a list of Task<void>.
Task<void> when_all(std::vector<Task<void>> tasks);

// Completes with the position of the first task to finish (successfully or not); the
// others keep running. Await the winner to get its value.
template <class T>
Task<std::size_t> when_any(const std::vector<Task<T>>& tasks) {
    std::vector<std::shared_ptr<detail::StateBase>> states;
    states.reserve(tasks.size());
    for (const auto& t : tasks) states.push_back(t.state());
    return Task<std::size_t>(detail::first_of(states));
}

// when_any over tasks of different types: when_any(activity, timer).
template <class... Ts>
Task<std::size_t> when_any(const Task<Ts>&... tasks) {
    std::vector<std::shared_ptr<detail::StateBase>> states{tasks.state()...};
    return Task<std::size_t>(detail::first_of(states));
}

}  // namespace durable
