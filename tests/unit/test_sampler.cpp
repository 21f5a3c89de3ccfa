// Head sampling (durable/tracing.hpp's Sampler): the OTEL_TRACES_SAMPLER names and ratios, the
// parent's flag, and a ratio decision that every process makes the same way.
#include <doctest/doctest.h>

#include <cstdlib>
#include <durable/tracing.hpp>
#include <set>

using namespace durable;

TEST_CASE("Sampler::parse knows the OpenTelemetry sampler names and refuses others") {
    auto on = Sampler::parse("always_on", "");
    REQUIRE(on);
    CHECK(on->root == Sampler::Root::AlwaysOn);
    CHECK_FALSE(on->parent_based);
    auto off = Sampler::parse("always_off", "");
    REQUIRE(off);
    CHECK(off->root == Sampler::Root::AlwaysOff);
    auto ratio = Sampler::parse("traceidratio", "0.25");
    REQUIRE(ratio);
    CHECK(ratio->root == Sampler::Root::TraceIdRatio);
    CHECK(ratio->ratio == doctest::Approx(0.25));
    CHECK_FALSE(ratio->parent_based);
    auto pb = Sampler::parse("parentbased_traceidratio", "0.5");
    REQUIRE(pb);
    CHECK(pb->parent_based);
    CHECK(pb->describe() == "parentbased_traceidratio{0.5}");
    auto pb_off = Sampler::parse("parentbased_always_off", "");
    REQUIRE(pb_off);
    CHECK(pb_off->parent_based);
    CHECK(pb_off->root == Sampler::Root::AlwaysOff);
    CHECK(Sampler::parse("parentbased_always_on", "")->describe() == "parentbased_always_on");
    CHECK(Sampler::parse("traceidratio", "")->ratio == doctest::Approx(1.0));  // no argument: 1.0, as the SDKs

    CHECK_FALSE(Sampler::parse("jaeger_remote", ""));
    CHECK_FALSE(Sampler::parse("ALWAYS_ON", ""));
    CHECK_FALSE(Sampler::parse("traceidratio", "1.5"));
    CHECK_FALSE(Sampler::parse("traceidratio", "-0.1"));
    CHECK_FALSE(Sampler::parse("traceidratio", "half"));
    CHECK_FALSE(Sampler::parse("traceidratio", "0.5x"));
}

TEST_CASE("Sampler::from_environment reads OTEL_TRACES_SAMPLER and its argument, and falls back on bad values") {
    ::unsetenv("OTEL_TRACES_SAMPLER");
    ::unsetenv("OTEL_TRACES_SAMPLER_ARG");
    CHECK(Sampler::from_environment().describe() == "parentbased_always_on");
    ::setenv("OTEL_TRACES_SAMPLER", "traceidratio", 1);
    ::setenv("OTEL_TRACES_SAMPLER_ARG", "0.1", 1);
    CHECK(Sampler::from_environment().describe() == "traceidratio{0.1}");
    ::setenv("OTEL_TRACES_SAMPLER", "always_off", 1);
    CHECK(Sampler::from_environment().describe() == "always_off");
    ::setenv("OTEL_TRACES_SAMPLER", "no_such_sampler", 1);
    CHECK(Sampler::from_environment().describe() == "parentbased_always_on");
    ::setenv("OTEL_TRACES_SAMPLER", "traceidratio", 1);
    ::setenv("OTEL_TRACES_SAMPLER_ARG", "2", 1);
    CHECK(Sampler::from_environment().describe() == "parentbased_always_on");
    ::unsetenv("OTEL_TRACES_SAMPLER");
    ::unsetenv("OTEL_TRACES_SAMPLER_ARG");
}

TEST_CASE("parent-based samplers follow the caller's flag, the others decide for themselves") {
    const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    Sampler pb_on;  // the default
    CHECK(pb_on.should_sample(trace, std::nullopt));
    CHECK(pb_on.should_sample(trace, true));
    CHECK_FALSE(pb_on.should_sample(trace, false));
    auto pb_off = *Sampler::parse("parentbased_always_off", "");
    CHECK_FALSE(pb_off.should_sample(trace, std::nullopt));
    CHECK(pb_off.should_sample(trace, true));
    CHECK(Sampler::always_on().should_sample(trace, false));
    CHECK_FALSE(Sampler::always_off().should_sample(trace, true));
    CHECK_FALSE(Sampler::trace_id_ratio(0.0).should_sample(trace, true));
    CHECK(Sampler::trace_id_ratio(1.0).should_sample(trace, false));
    CHECK(Sampler::trace_id_ratio(0.0, true).should_sample(trace, true));
}

TEST_CASE("traceidratio keeps about its fraction of traces, chosen by the trace id alone") {
    auto half = Sampler::trace_id_ratio(0.5);
    auto tenth = Sampler::trace_id_ratio(0.1);
    int kept_half = 0, kept_tenth = 0, tenth_not_half = 0;
    const int n = 4000;
    for (int i = 0; i < n; ++i) {
        auto id = TraceContext::new_trace_id();
        bool h = half.should_sample(id, std::nullopt);
        bool t = tenth.should_sample(id, std::nullopt);
        // The same id gives the same answer (another process decides alike).
        CHECK(h == half.should_sample(id, std::nullopt));
        kept_half += h;
        kept_tenth += t;
        // Thresholds on one number: a trace kept at 10 % is kept at 50 %.
        tenth_not_half += t && !h;
    }
    // Binomial: 4,000 draws, the standard deviation is 32 (p = 0.5) and 19 (p = 0.1).
    CHECK(kept_half > n / 2 - 300);
    CHECK(kept_half < n / 2 + 300);
    CHECK(kept_tenth > n / 10 - 150);
    CHECK(kept_tenth < n / 10 + 150);
    CHECK(tenth_not_half == 0);
    // The low 64 bits decide: ids that differ only there fall on both sides of 50 %.
    CHECK(half.should_sample("ffffffffffffffff0000000000000001", std::nullopt));
    CHECK_FALSE(half.should_sample("0000000000000000ffffffffffffffff", std::nullopt));
}
