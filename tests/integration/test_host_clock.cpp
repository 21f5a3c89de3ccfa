// The host's lease decisions run on the host's clock (HostOptions::clock) alone: a clock
// whose monotonic time has nothing to do with the machine's must still fence on time.
#include <doctest/doctest.h>

#include <thread>

#include "support/engine_fixture.hpp"

using namespace durable;
using namespace std::chrono_literals;
using durable::test::Engine;

namespace {

// Wall time follows the machine (the client writes with it); monotonic time starts near
// zero, far behind std::chrono::steady_clock, and moves only when told.
class OffsetClock final : public Clock {
public:
    std::int64_t now_ms() const override {
        return SystemClock::instance()->now_ms() + std::chrono::duration_cast<std::chrono::milliseconds>(offset()).count();
    }
    std::chrono::steady_clock::time_point steady_now() const override {
        return std::chrono::steady_clock::time_point{} + std::chrono::seconds(1) + offset();
    }
    void sleep_for(std::chrono::nanoseconds d) override { std::this_thread::sleep_for(d); }
    void advance(std::chrono::nanoseconds d) {
        std::lock_guard lock(mu_);
        offset_ += d;
    }

private:
    std::chrono::nanoseconds offset() const {
        std::lock_guard lock(mu_);
        return offset_;
    }
    mutable std::mutex mu_;
    std::chrono::nanoseconds offset_{0};
};

Task<std::string> wait_go(OrchestrationContext& ctx) {
    co_return co_await ctx.wait_for_external_event<std::string>("go");
}

}  // namespace

TEST_CASE("a host past two thirds of its lease without renewal fences itself on its own clock") {
    auto reg = std::make_shared<Registry>();
    reg->add_orchestrator("wait_go", wait_go);
    auto clock = std::make_shared<OffsetClock>();
    HostOptions o;
    o.clock = clock;
    o.lease_duration = 60s;  // the renewer's first round (30 s) never comes during the test
    Engine e(reg, o);
    auto c = e.client();
    auto iid = c.schedule("wait_go");
    // Wait until its first episode is durable: the instance waits for "go" in memory.
    auto running = [&] { return c.get_status(iid)->status == Status::Running; };
    for (int i = 0; i < 2000 && !running(); ++i) std::this_thread::sleep_for(5ms);
    REQUIRE(running());
    CHECK(e.host->stats().replays == 0);

    // 41 s on the host's clock with no renewal: past the fencing point (40 s). The next
    // episode must not run on the cached instance; the instance is dropped, its lease given
    // up, and it is claimed and rebuilt from history.
    clock->advance(41s);
    c.raise_event(iid, "go", "now");
    auto done = c.wait_for_completion(iid, 30s);
    CHECK(done.status == Status::Completed);
    CHECK(done.output == "now");
    CHECK(e.host->stats().replays >= 1);
}
