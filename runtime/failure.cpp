// Failure records: exception names and messages, FailureDetails <-> JSON.
#include "runtime/failure.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <fmt/format.h>
#include <typeinfo>

#include "durable/history.hpp"

namespace durable {

namespace {

// How deep an inner chain is written or read at most (a cycle cannot occur in JSON, but a
// pathological nesting could be deep).
constexpr int kMaxInnerDepth = 16;

Json to_json_depth(const FailureDetails& f, int depth) {
    Json j = {{"type", f.type}, {"message", f.message}};
    if (!f.details.empty()) j["details"] = f.details;
    if (!f.task_kind.empty()) {
        Json task = {{"kind", f.task_kind}, {"name", f.task_name}, {"id", f.task_id}};
        if (!f.task_instance_id.empty()) task["instance"] = f.task_instance_id;
        j["task"] = std::move(task);
    }
    if (f.inner && depth < kMaxInnerDepth) j["inner"] = to_json_depth(*f.inner, depth + 1);
    return j;
}

std::string string_field(const Json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end()) return {};
    return it->is_string() ? it->get<std::string>() : it->dump();
}

FailureDetails from_json_depth(const Json& j, int depth) {
    FailureDetails f;
    if (!j.is_object()) {
        f.type = "Error";
        f.message = j.is_string() ? j.get<std::string>() : j.dump();
        return f;
    }
    f.type = string_field(j, "type");
    if (f.type.empty()) f.type = "Error";
    f.message = string_field(j, "message");
    f.details = string_field(j, "details");
    if (auto t = j.find("task"); t != j.end() && t->is_object()) {
        f.task_kind = string_field(*t, "kind");
        f.task_name = string_field(*t, "name");
        f.task_instance_id = string_field(*t, "instance");
        if (auto id = t->find("id"); id != t->end() && id->is_number_integer()) f.task_id = id->get<std::int64_t>();
    }
    if (auto in = j.find("inner"); in != j.end() && !in->is_null() && depth < kMaxInnerDepth) {
        f.inner = std::make_shared<const FailureDetails>(from_json_depth(*in, depth + 1));
    }
    return f;
}

}  // namespace

FailureDetails failure_from_json(const Json& error) {
    return from_json_depth(error, 0);
}

Json failure_to_json(const FailureDetails& f) {
    return to_json_depth(f, 0);
}

namespace detail {

std::string exception_type_name(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const TaskFailed&) {
        return "TaskFailed";
    } catch (const std::exception& ex) {
        int status = 0;
        char* name = abi::__cxa_demangle(typeid(ex).name(), nullptr, nullptr, &status);
        std::string out = status == 0 && name ? name : typeid(ex).name();
        std::free(name);
        // std::throw_with_nested(E) throws a library type deriving from E: name E.
        constexpr std::string_view nested = "std::_Nested_exception<";
        if (out.size() > nested.size() && out.compare(0, nested.size(), nested) == 0 && out.back() == '>') {
            out = out.substr(nested.size(), out.size() - nested.size() - 1);
        }
        return out;
    } catch (...) {
        return "unknown";
    }
}

std::string exception_message(const std::exception_ptr& e) {
    if (!e) return "no error";
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        return ex.what();
    } catch (...) {
        return "an exception not derived from std::exception";
    }
}

namespace {

FailureDetails details_of(const std::exception_ptr& e, std::size_t max_details, int depth) {
    FailureDetails f;
    try {
        std::rethrow_exception(e);
    } catch (const TaskFailed& tf) {
        f = tf.failure();
    } catch (...) {
        f.type = exception_type_name(e);
        f.message = exception_message(e);
    }
    if (f.details.size() > max_details) f.details.resize(max_details);
    if (!f.inner && depth < kMaxInnerDepth) {
        try {
            std::rethrow_exception(e);
        } catch (const std::nested_exception& nested) {
            if (auto inner = nested.nested_ptr()) {
                f.inner = std::make_shared<const FailureDetails>(details_of(inner, max_details, depth + 1));
            }
        } catch (...) {
        }
    }
    return f;
}

}  // namespace

Json failure_json(const std::exception_ptr& e, std::size_t max_details) {
    return failure_to_json(details_of(e, max_details, 0));
}

Json orchestrator_failure_json(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const TaskFailed& tf) {
        const FailureDetails& task = tf.failure();
        if (task.task_kind.empty()) return failure_json(e);
        FailureDetails top;
        top.type = "TaskFailed";
        // A sub-orchestration's failure already says which one failed.
        std::string named = fmt::format("{} '{}'", task.task_kind, task.task_name);
        top.message = task.message.rfind(named, 0) == 0
                          ? task.message
                          : fmt::format("{} (task {}) failed: {}", named, task.task_id, task.message);
        top.task_kind = task.task_kind;
        top.task_name = task.task_name;
        top.task_id = task.task_id;
        top.task_instance_id = task.task_instance_id;
        top.inner = std::make_shared<const FailureDetails>(task);
        return failure_to_json(top);
    } catch (...) {
        return failure_json(e);
    }
}

}  // namespace detail
}  // namespace durable
