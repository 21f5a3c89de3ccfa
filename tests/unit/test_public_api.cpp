// The installed headers' surface: internals are out of reach of user code, and the error
// types users handle exist. Each check is a compile-time fact, evaluated in a test so that a
// regression shows up as a failing test naming what leaked.
#include <doctest/doctest.h>

#include <type_traits>

#include <durable/durable.hpp>

namespace {

template <class D>
concept reaches_store = requires(const D& db) { db.store(); };
template <class D>
concept reaches_completions = requires(const D& db) { db.completions(); };
template <class C>
concept can_attach = requires(C& c) { c.attach(nullptr); };
template <class C>
concept names_attachment = requires { typename C::Attachment; };
template <class H>
concept names_impl = requires { typename H::Impl; };
template <class X>
concept calls_schedule_impl =
    requires(X& ctx) { ctx.schedule_activity_impl(std::string(), durable::Json(), nullptr); };
template <class X>
concept calls_log_impl = requires(X& ctx) { ctx.log_impl(std::string()); };
template <class X>
concept calls_continue_impl = requires(X& ctx) { ctx.continue_as_new_impl(durable::Json(), true); };

}  // namespace

TEST_CASE("internals are not part of the public API") {
    CHECK_FALSE(reaches_store<durable::Database>);
    CHECK_FALSE(reaches_completions<durable::Database>);
    CHECK_FALSE(can_attach<durable::Client>);
    CHECK_FALSE(names_attachment<durable::Client>);
    CHECK_FALSE(names_impl<durable::Host>);
    CHECK_FALSE(calls_schedule_impl<durable::OrchestrationContext>);
    CHECK_FALSE(calls_log_impl<durable::OrchestrationContext>);
    CHECK_FALSE(calls_continue_impl<durable::OrchestrationContext>);
}

TEST_CASE("every error type users handle is a durable::Error") {
    CHECK(std::is_base_of_v<durable::Error, durable::UnknownOrchestration>);
    CHECK(std::is_base_of_v<durable::InvalidInput, durable::UnknownOrchestration>);
    CHECK(std::is_base_of_v<durable::Error, durable::InstanceExists>);
    CHECK(std::is_base_of_v<durable::Error, durable::InstanceNotFound>);
    durable::FailureDetails inner{"std::invalid_argument", "bad", "", "", "", "", -1, nullptr};
    durable::FailureDetails f{"std::runtime_error", "declined", "", "activity", "charge", "", 3,
                              std::make_shared<const durable::FailureDetails>(inner)};
    durable::TaskFailed e(f);
    CHECK(std::string(e.what()) == "declined");
    CHECK(e.error_type() == "std::runtime_error");
    CHECK(e.task_name() == "charge");
    REQUIRE(e.failure().inner);
    CHECK(e.failure().inner->message == "bad");
    auto back = durable::failure_from_json(durable::failure_to_json(f));
    CHECK(back.task_kind == "activity");
    CHECK(back.task_id == 3);
    REQUIRE(back.inner);
    CHECK(back.inner->type == "std::invalid_argument");
}
