// durable/registry.hpp — the names a host knows: orchestrators, activities, shared resources.
//
// Orchestrators are coroutines `Task<Out>(OrchestrationContext&, In)` (or without the input);
// activities are plain callables `Out(ActivityContext&, In)` or `Out(In)`. In and Out are
// any types nlohmann::json converts (through to_json / from_json for user types).
//
// Thread safety: fill a registry before handing it to a Host; afterwards it is read-only
// and safe to share between threads.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "durable/context.hpp"
#include "durable/remote_orchestrator.hpp"
#include "durable/resilience.hpp"
#include "durable/shared_provider.hpp"
#include "durable/task.hpp"

namespace durable {

// What an activity invocation knows about itself.
class ActivityContext {
public:
    ActivityContext(std::string instance_id, std::string execution_id, std::int64_t task_id, std::string name,
                    int attempt, CancellationToken token,
                    const std::map<std::string, std::shared_ptr<SharedResource>, std::less<>>* resources,
                    std::string correlation_id = {})
        : instance_id_(std::move(instance_id)),
          execution_id_(std::move(execution_id)),
          task_id_(task_id),
          name_(std::move(name)),
          attempt_(attempt),
          token_(std::move(token)),
          resources_(resources),
          correlation_id_(std::move(correlation_id)) {}

    const std::string& instance_id() const { return instance_id_; }
    const std::string& name() const { return name_; }
    std::int64_t task_id() const { return task_id_; }
    // 1 for the first in-process attempt of this scheduling, 2 for its first retry, ...
    int attempt() const { return attempt_; }
    // The same for every execution of this activity call (activities run at least once):
    // use it to make side effects idempotent.
    std::string idempotency_key() const { return instance_id_ + "/" + execution_id_ + "/" + std::to_string(task_id_); }
    // The trace this call belongs to (see tracing.hpp): put it in your logs and outgoing calls.
    const std::string& correlation_id() const { return correlation_id_; }
    // Cancelled when the attempt's timeout passes, the host stops, the instance is terminated
    // or finishes, or the host loses the lease the activity runs under; check it in long work.
    const CancellationToken& cancellation() const { return token_; }
    // Says the activity is alive, with optional progress `details`. For an activity run from
    // the task table (by a host other than the instance's) it extends the task's lease, so a
    // long activity is not taken over while it heartbeats, and stores `details` for a worker
    // that takes it over after a crash (last_heartbeat_details). Writes are spaced out (at
    // most one per quarter lease); call it as often as convenient. Returns false once the
    // activity should stop (cancellation() is then cancelled): its instance finished or was
    // terminated, its lease was lost, or the host is stopping.
    bool heartbeat(const Json& details = Json()) {
        if (heartbeat_) return heartbeat_(details) && !token_.cancelled();
        return !token_.cancelled();
    }
    // The details of the last heartbeat of an earlier execution of this task (one that was
    // taken over), or null.
    const Json& last_heartbeat_details() const { return last_details_; }
    // Set by the host that runs the activity.
    void on_heartbeat(std::function<bool(const Json&)> fn, Json last_details) {
        heartbeat_ = std::move(fn);
        last_details_ = std::move(last_details);
    }

    // The current resource of the shared provider registered under `name`. Blocks while the
    // provider builds it; throws the factory's failure if the build failed.
    template <class R>
    std::shared_ptr<R> resource(std::string_view name) {
        auto p = acquire_as<R>(lookup(name));
        acquired_[std::string(name)] = p;
        return p;
    }
    // Tells the provider `name` that the resource this call got is broken; it is rebuilt.
    void report_broken(std::string_view name) {
        auto it = acquired_.find(std::string(name));
        if (it != acquired_.end()) lookup(name).report_broken(it->second);
    }

private:
    SharedResource& lookup(std::string_view name) const {
        if (resources_) {
            auto it = resources_->find(name);
            if (it != resources_->end()) return *it->second;
        }
        throw InvalidInput("no shared resource named '" + std::string(name) +
                           "' is registered; add it with Registry::add_resource");
    }

    std::string instance_id_, execution_id_;
    std::int64_t task_id_;
    std::string name_;
    int attempt_;
    CancellationToken token_;
    const std::map<std::string, std::shared_ptr<SharedResource>, std::less<>>* resources_;
    std::string correlation_id_;
    std::map<std::string, std::shared_ptr<void>> acquired_;
    std::function<bool(const Json&)> heartbeat_;
    Json last_details_;
};

// Thrown by an activity to say its shared resource is broken: the worker reports it to the
// provider (which rebuilds it) and the attempt fails as transient.
class ResourceBroken : public Error {
public:
    ResourceBroken(std::string resource, const std::string& message)
        : Error(message), resource_(std::move(resource)) {}
    const std::string& resource() const { return resource_; }

private:
    std::string resource_;
};

using OrchestratorFn = std::function<Task<Json>(OrchestrationContext&, Json)>;
using ActivityFn = std::function<Json(ActivityContext&, const Json&)>;

// How the host calls an activity: in-process resilience (retry, breaker, timeout), and how
// many executions of it the host runs at once.
struct ActivitySettings {
    std::optional<ResiliencePolicy> policy;  // empty: the host's default policy
    // At most this many executions of the activity at once on one host (0: no limit). A
    // limited activity always goes through the task table, so queued calls wait there (for
    // this host or another that registers it), not in memory.
    int max_concurrent = 0;
};

struct ActivityEntry {
    ActivityFn fn;
    ActivitySettings settings;
};

namespace detail {

template <class T>
struct fn_traits : fn_traits<decltype(&T::operator())> {};
template <class R, class C, class... A>
struct fn_traits<R (C::*)(A...) const> {
    using ret = R;
    using args = std::tuple<std::decay_t<A>...>;
};
template <class R, class C, class... A>
struct fn_traits<R (C::*)(A...)> : fn_traits<R (C::*)(A...) const> {};
template <class R, class... A>
struct fn_traits<R (*)(A...)> {
    using ret = R;
    using args = std::tuple<std::decay_t<A>...>;
};
template <class R, class... A>
struct fn_traits<R(A...)> : fn_traits<R (*)(A...)> {};

template <class T>
struct task_value;
template <class T>
struct task_value<Task<T>> {
    using type = T;
};

// Reads `input` as In, or throws InvalidInput naming what was expected.
template <class In>
In convert_input(const Json& input, std::string_view what) {
    if constexpr (std::is_same_v<In, Json>) {
        return input;
    } else {
        try {
            return input.get<In>();
        } catch (const std::exception& e) {
            throw InvalidInput("the input of " + std::string(what) + " could not be read: " +
                               describe_json_type_error(e) + "; input was " + input.dump().substr(0, 200));
        }
    }
}

template <class F>
Task<Json> run_orchestrator(F f, OrchestrationContext& ctx, Json input) {
    using traits = fn_traits<std::decay_t<F>>;
    using Out = typename task_value<typename traits::ret>::type;
    constexpr std::size_t arity = std::tuple_size_v<typename traits::args>;
    if constexpr (arity == 1) {
        if constexpr (std::is_void_v<Out>) {
            co_await f(ctx);
            co_return Json();
        } else {
            co_return Json(co_await f(ctx));
        }
    } else {
        using In = std::tuple_element_t<1, typename traits::args>;
        In arg = convert_input<In>(input, "orchestration '" + ctx.name() + "'");
        if constexpr (std::is_void_v<Out>) {
            co_await f(ctx, std::move(arg));
            co_return Json();
        } else {
            co_return Json(co_await f(ctx, std::move(arg)));
        }
    }
}

template <class F>
ActivityFn wrap_activity(std::string name, F f) {
    using traits = fn_traits<std::decay_t<F>>;
    using Out = typename traits::ret;
    using Args = typename traits::args;
    constexpr std::size_t arity = std::tuple_size_v<Args>;
    return [f = std::move(f), name = std::move(name)](ActivityContext& ctx, const Json& input) -> Json {
        auto call = [&]() -> decltype(auto) {
            if constexpr (arity == 0) {
                return f();
            } else if constexpr (arity == 1 && std::is_same_v<std::tuple_element_t<0, Args>, ActivityContext>) {
                return f(ctx);
            } else if constexpr (arity == 1) {
                using In = std::tuple_element_t<0, Args>;
                return f(convert_input<In>(input, "activity '" + name + "'"));
            } else {
                using In = std::tuple_element_t<1, Args>;
                return f(ctx, convert_input<In>(input, "activity '" + name + "'"));
            }
        };
        if constexpr (std::is_void_v<Out>) {
            call();
            return Json();
        } else {
            return Json(call());
        }
    };
}

}  // namespace detail

// How an orchestrator is registered. `version` names one version of the orchestration's
// code ("" when the orchestration is not versioned). Several versions of one name may be
// registered side by side; an instance records the version it started with and always runs
// that version's code, so code whose decisions changed gets a new version instead of
// breaking the instances in flight (see README, "Changing code while instances run").
// Versions are ordered segment by segment on '.', numerically where both segments are
// numbers ("2" < "10" < "10.1"), "" first of all.
struct OrchestratorSettings {
    std::string version;
};

// Orders orchestration versions as OrchestratorSettings describes: negative, zero or positive.
int compare_versions(std::string_view a, std::string_view b);

class Registry {
public:
    // Registers version `settings.version` of orchestrator `name`. Replaces an earlier
    // registration of the same name and version; other versions stay.
    template <class F>
    Registry& add_orchestrator(std::string name, F f, OrchestratorSettings settings = {}) {
        orchestrators_[name][settings.version] = [f = std::move(f)](OrchestrationContext& ctx, Json input) {
            return detail::run_orchestrator(f, ctx, std::move(input));
        };
        return *this;
    }
    // Registers activity `name`, optionally with its own in-process resilience policy.
    template <class F>
    Registry& add_activity(std::string name, F f, ActivitySettings settings = {}) {
        activities_[name] = ActivityEntry{detail::wrap_activity(name, std::move(f)), std::move(settings)};
        return *this;
    }
    // Registers a shared resource provider under its name, for ActivityContext::resource.
    Registry& add_resource(std::shared_ptr<SharedResource> resource) {
        resources_[resource->name()] = std::move(resource);
        return *this;
    }

    // The newest registered version of orchestrator `name`, or null.
    const OrchestratorFn* orchestrator(std::string_view name) const {
        auto it = orchestrators_.find(name);
        return it == orchestrators_.end() || it->second.empty() ? nullptr : &it->second.rbegin()->second;
    }
    // Version `version` of orchestrator `name`, or null.
    const OrchestratorFn* orchestrator(std::string_view name, std::string_view version) const {
        auto it = orchestrators_.find(name);
        if (it == orchestrators_.end()) return nullptr;
        auto v = it->second.find(version);
        return v == it->second.end() ? nullptr : &v->second;
    }
    // The versions of `name` registered, oldest first (empty when the name is not).
    std::vector<std::string> orchestrator_versions(std::string_view name) const;
    // The newest version of `name` registered, or nullopt when the name is not.
    std::optional<std::string> newest_version(std::string_view name) const;
    // Runs every activity that is not registered by name: a `durable serve` process hands
    // those to its connected workers. ActivityContext::name() says which one was called.
    Registry& set_default_activity(ActivityFn fn, ActivitySettings settings = {}) {
        default_activity_ = ActivityEntry{std::move(fn), std::move(settings)};
        return *this;
    }
    bool has_default_activity() const { return default_activity_.has_value(); }
    // Runs every orchestration that is not registered by name (see remote_orchestrator.hpp):
    // a `durable serve` process hands those to its connected workers, step by step.
    Registry& set_default_orchestrator(std::shared_ptr<RemoteOrchestrator> remote) {
        default_orchestrator_ = std::move(remote);
        return *this;
    }
    // The default orchestrator, or null.
    RemoteOrchestrator* default_orchestrator() const { return default_orchestrator_.get(); }
    // The activity registered as `name`, else the default one, else null.
    const ActivityEntry* activity(std::string_view name) const {
        auto it = activities_.find(name);
        if (it != activities_.end()) return &it->second;
        return default_activity_ ? &*default_activity_ : nullptr;
    }
    const std::map<std::string, std::shared_ptr<SharedResource>, std::less<>>& resources() const { return resources_; }
    std::vector<std::string> orchestrator_names() const;
    std::vector<std::string> activity_names() const;
    // A copy with only the orchestrators and activities `keep` accepts (every shared resource
    // kept), for hosts that run part of an application: orchestration hosts, activity workers.
    Registry filtered(const std::function<bool(bool orchestrator, const std::string& name)>& keep) const;

private:
    struct VersionLess {
        using is_transparent = void;
        bool operator()(std::string_view a, std::string_view b) const { return compare_versions(a, b) < 0; }
    };
    std::map<std::string, std::map<std::string, OrchestratorFn, VersionLess>, std::less<>> orchestrators_;
    std::map<std::string, ActivityEntry, std::less<>> activities_;
    std::map<std::string, std::shared_ptr<SharedResource>, std::less<>> resources_;
    std::optional<ActivityEntry> default_activity_;
    std::shared_ptr<RemoteOrchestrator> default_orchestrator_;
};

}  // namespace durable
