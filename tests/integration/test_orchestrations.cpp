// The example orchestrations (orchestrations/) against a real SQLite file: each one's
// expected result and its failure paths.
#include <doctest/doctest.h>

#include <algorithm>
#include <thread>

#include "orchestrations/orchestrations.hpp"
#include "support/engine_fixture.hpp"

using namespace durable;
using namespace durable::orchestrations;
using namespace std::chrono_literals;
using durable::test::Engine;

namespace {

std::vector<std::string> scheduled_activities(Client& c, const std::string& id) {
    std::vector<std::string> out;
    for (const auto& h : c.history(id)) {
        if (h.event.value("t", "") == "TaskScheduled") out.push_back(h.event.value("name", ""));
    }
    return out;
}

Order sample_order(const std::string& id) {
    Order o;
    o.order_id = id;
    o.customer = "ada";
    o.items = {{"book", 2, 12.5}, {"pen", 3, 1.25}};
    return o;
}

// Waits (bounded) until the instance's custom status has `key` equal to `value`.
bool wait_custom_status(Client& c, const std::string& id, const std::string& key, const Json& value,
                        std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        auto s = c.get_status(id);
        if (s && s->custom_status.is_object() && s->custom_status.value(key, Json()) == value) return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

}  // namespace

TEST_CASE("simulated failures are deterministic under a seed") {
    CHECK(deterministic_unit(7, "charge/o-1", 3, 1) == deterministic_unit(7, "charge/o-1", 3, 1));
    CHECK(deterministic_unit(7, "charge/o-1", 3, 1) != deterministic_unit(8, "charge/o-1", 3, 1));
    CHECK(deterministic_unit(7, "charge/o-1", 3, 1) != deterministic_unit(7, "charge/o-1", 3, 2));
    int below = 0;
    for (int i = 0; i < 1000; ++i) below += deterministic_unit(1, "k", i, 1) < 0.25 ? 1 : 0;
    CHECK(below > 180);
    CHECK(below < 320);
}

TEST_CASE("order_pipeline validates, reserves, pays through the payment sub-orchestration and ships") {
    Engine e(make_registry());
    auto c = e.client();
    auto id = c.schedule(kOrderPipeline, sample_order("o-1"));
    auto s = c.wait_for_completion(id, 20s);
    REQUIRE(s.status == Status::Completed);
    auto r = s.output.get<OrderResult>();
    CHECK(r.status == "shipped");
    CHECK(r.amount == doctest::Approx(28.75));
    CHECK(r.reservation_id.rfind("RSV-", 0) == 0);
    CHECK(r.payment_id.rfind("PAY-", 0) == 0);
    CHECK(r.tracking.rfind("TRK-", 0) == 0);
    CHECK(!r.host.empty());
    CHECK(scheduled_activities(c, id) == std::vector<std::string>{"validate_order", "reserve_stock", "ship_order"});

    auto pay = c.get_status(id + "/payment");
    REQUIRE(pay);
    CHECK(pay->name == kPayment);
    CHECK(pay->status == Status::Completed);
    CHECK(pay->parent_id == id);
    CHECK(pay->output.get<PaymentResult>().status == "captured");
}

TEST_CASE("order_pipeline rejects an invalid order and an out-of-stock item without failing") {
    Engine e(make_registry());
    auto c = e.client();
    Order empty;
    empty.order_id = "o-empty";
    auto a = c.schedule(kOrderPipeline, empty);
    Order out = sample_order("o-out");
    out.items.push_back({"OUT-kettle", 1, 30});
    auto b = c.schedule(kOrderPipeline, out);

    auto sa = c.wait_for_completion(a, 20s);
    REQUIRE(sa.status == Status::Completed);
    CHECK(sa.output["status"] == "rejected");
    CHECK(sa.output["reason"].get<std::string>().find("no items") != std::string::npos);

    auto sb = c.wait_for_completion(b, 20s);
    REQUIRE(sb.status == Status::Completed);
    CHECK(sb.output["status"] == "rejected");
    CHECK(sb.output["reason"].get<std::string>().find("OUT-kettle") != std::string::npos);
    CHECK(!c.get_status(b + "/payment"));  // never charged
}

TEST_CASE("order_pipeline releases the stock when the payment is declined") {
    Engine e(make_registry());
    auto c = e.client();
    Order o = sample_order("o-declined");
    o.card = "declined";
    auto id = c.schedule(kOrderPipeline, o);
    auto s = c.wait_for_completion(id, 20s);
    REQUIRE(s.status == Status::Completed);
    auto r = s.output.get<OrderResult>();
    CHECK(r.status == "payment_declined");
    CHECK(r.reason.find("declined") != std::string::npos);
    CHECK(r.tracking.empty());
    CHECK(scheduled_activities(c, id) == std::vector<std::string>{"validate_order", "reserve_stock", "release_stock"});
    // A refusal is not retried: one authorize call in the payment's history.
    CHECK(scheduled_activities(c, id + "/payment") == std::vector<std::string>{"authorize_payment"});
}

TEST_CASE("order_pipeline ships despite transient failures, through in-process and durable retries") {
    Engine e(make_registry());
    auto c = e.client();
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) {
        Order o = sample_order("o-flaky-" + std::to_string(i));
        o.sim.failure_rate = 0.4;
        o.sim.seed = 11;
        ids.push_back(c.schedule(kOrderPipeline, o));
    }
    int durable_retries = 0;  // attempts that failed after their in-process retries and were retried durably
    for (auto& id : ids) {
        auto s = c.wait_for_completion(id, 60s);
        REQUIRE(s.status == Status::Completed);
        CHECK(s.output["status"] == "shipped");
        for (const auto& h : c.history(id)) durable_retries += h.type() == EventType::TaskFailed;
    }
    // Both kinds of retry happened (the simulated failures are a function of the seed, the task
    // and the attempt, so these counts are the same on every run).
    CHECK(durable_retries > 0);
    auto text = e.host->metrics_text();
    auto at = text.find("\ndurable_resilience_retries_total ");
    REQUIRE(at != std::string::npos);
    CHECK(std::stod(text.substr(at + std::string("\ndurable_resilience_retries_total ").size())) > 0);
}

TEST_CASE("order_pipeline fails when every attempt of a step fails") {
    Engine e(make_registry());
    auto c = e.client();
    Order o = sample_order("o-doomed");
    o.sim.failure_rate = 1.0;
    auto id = c.schedule(kOrderPipeline, o);
    auto s = c.wait_for_completion(id, 30s);
    REQUIRE(s.status == Status::Failed);
    CHECK(s.error["message"].get<std::string>().find("simulated transient failure") != std::string::npos);
    // The durable retry made 4 attempts of validate_order.
    CHECK(scheduled_activities(c, id) == std::vector<std::string>(4, "validate_order"));
}

TEST_CASE("word_count fans out one activity per document and merges the counts") {
    Engine e(make_registry());
    auto c = e.client();
    WordCountRequest req;
    req.documents = 300;
    req.words_per_document = 40;
    req.seed = 5;
    auto id = c.schedule(kWordCount, req);
    auto s = c.wait_for_completion(id, 60s);
    REQUIRE(s.status == Status::Completed);
    auto got = s.output.get<WordCountResult>();
    auto want = expected_word_count(req);
    CHECK(got.documents == 300);
    CHECK(got.total_words == 300 * 40);
    CHECK(got.total_words == want.total_words);
    CHECK(got.distinct_words == want.distinct_words);
    REQUIRE(got.top.size() == want.top.size());
    for (std::size_t i = 0; i < got.top.size(); ++i) {
        CHECK(got.top[i].word == want.top[i].word);
        CHECK(got.top[i].count == want.top[i].count);
    }
    auto scheduled = scheduled_activities(c, id);
    CHECK(std::count(scheduled.begin(), scheduled.end(), "count_words") == 300);
}

TEST_CASE("word_count counts given texts, and zero documents") {
    Engine e(make_registry());
    auto c = e.client();
    WordCountRequest req;
    req.texts = {"The cat sat.", "the CAT, the hat", ""};
    req.top = 2;
    auto id = c.schedule(kWordCount, req);
    auto s = c.wait_for_completion(id, 20s);
    REQUIRE(s.status == Status::Completed);
    auto r = s.output.get<WordCountResult>();
    CHECK(r.documents == 3);
    CHECK(r.total_words == 7);
    CHECK(r.distinct_words == 4);
    REQUIRE(r.top.size() == 2);
    CHECK(r.top[0].word == "the");
    CHECK(r.top[0].count == 3);
    CHECK(r.top[1].word == "cat");

    WordCountRequest none;
    none.documents = 0;
    auto z = c.wait_for_completion(c.schedule(kWordCount, none), 20s);
    REQUIRE(z.status == Status::Completed);
    CHECK(z.output["total_words"] == 0);
}

TEST_CASE("word_count handles thousands of documents in one instance") {
    Engine e(make_registry());
    auto c = e.client();
    WordCountRequest req;
    req.documents = 2000;
    req.words_per_document = 10;
    auto id = c.schedule(kWordCount, req);
    auto s = c.wait_for_completion(id, 120s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output["total_words"] == 20000);
    CHECK(s.output["total_words"] == expected_word_count(req).total_words);
}

TEST_CASE("approval completes on `approved` and on `rejected`, naming who decided") {
    Engine e(make_registry());
    auto c = e.client();
    ApprovalRequest req;
    req.requester = "ada";
    req.amount = 500;
    req.request_id = "r-yes";
    auto yes = c.schedule(kApproval, req);
    req.request_id = "r-no";
    auto no = c.schedule(kApproval, req);
    REQUIRE(wait_custom_status(c, yes, "stage", "waiting"));
    c.raise_event(yes, "approved", Json{{"by", "grace"}, {"comment", "fine"}});
    c.raise_event(no, "rejected", "linus");  // raised before or while waiting: both work

    auto sy = c.wait_for_completion(yes, 20s);
    REQUIRE(sy.status == Status::Completed);
    auto ry = sy.output.get<ApprovalResult>();
    CHECK(ry.outcome == "approved");
    CHECK(ry.decided_by == "grace");
    CHECK(ry.comment == "fine");
    CHECK_FALSE(ry.escalated);

    auto sn = c.wait_for_completion(no, 20s);
    REQUIRE(sn.status == Status::Completed);
    CHECK(sn.output["outcome"] == "rejected");
    CHECK(sn.output["decided_by"] == "linus");
}

TEST_CASE("approval escalates on its durable timeout, then takes a late decision or expires") {
    Engine e(make_registry());
    auto c = e.client();
    ApprovalRequest req;
    req.timeout_ms = 300;
    req.escalation_timeout_ms = 60'000;
    req.request_id = "r-late";
    auto late = c.schedule(kApproval, req);
    req.escalation_timeout_ms = 300;
    req.request_id = "r-expired";
    auto expired = c.schedule(kApproval, req);

    REQUIRE(wait_custom_status(c, late, "stage", "escalated"));
    CHECK(c.get_status(late)->custom_status["approver"] == "director");
    c.raise_event(late, "approved", Json{{"by", "director"}});
    auto sl = c.wait_for_completion(late, 20s);
    REQUIRE(sl.status == Status::Completed);
    CHECK(sl.output["outcome"] == "approved");
    CHECK(sl.output["escalated"] == true);
    CHECK(sl.output["decided_by"] == "director");
    // Notified twice: the approver, then the escalation.
    CHECK(scheduled_activities(c, late) ==
          std::vector<std::string>{"notify_approver", "notify_approver", "record_decision"});

    auto se = c.wait_for_completion(expired, 20s);
    REQUIRE(se.status == Status::Completed);
    CHECK(se.output["outcome"] == "expired");
    CHECK(se.output["escalated"] == true);
}

TEST_CASE("approval keeps waiting across a host restart and takes the decision afterwards") {
    Engine e(make_registry());
    ApprovalRequest req;
    req.request_id = "r-restart";
    auto id = e.client().schedule(kApproval, req);
    {
        auto c = e.client();
        REQUIRE(wait_custom_status(c, id, "stage", "waiting"));
    }
    e.restart(false);  // as a crash: the new host replays the history
    auto c = e.client();
    c.raise_event(id, "approved", "ada");
    auto s = c.wait_for_completion(id, 20s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output["outcome"] == "approved");
}

TEST_CASE("booking_saga books flight, hotel and car") {
    Engine e(make_registry());
    auto c = e.client();
    TripRequest t;
    t.trip_id = "t-ok";
    auto s = c.wait_for_completion(c.schedule(kBookingSaga, t), 20s);
    REQUIRE(s.status == Status::Completed);
    auto r = s.output.get<TripResult>();
    CHECK(r.status == "booked");
    REQUIRE(r.bookings.size() == 3);
    CHECK(r.bookings[0].kind == "flight");
    CHECK(r.bookings[1].kind == "hotel");
    CHECK(r.bookings[2].kind == "car");
    CHECK(r.compensated.empty());
}

TEST_CASE("booking_saga compensates the booked steps in reverse order when a later one fails") {
    Engine e(make_registry());
    auto c = e.client();
    TripRequest t;
    t.trip_id = "t-car";
    t.fail_at = "car";
    auto car = c.schedule(kBookingSaga, t);
    t.trip_id = "t-flight";
    t.fail_at = "flight";
    auto flight = c.schedule(kBookingSaga, t);

    auto sc = c.wait_for_completion(car, 20s);
    REQUIRE(sc.status == Status::Completed);
    auto rc = sc.output.get<TripResult>();
    CHECK(rc.status == "compensated");
    CHECK(rc.failed_step == "car");
    CHECK(rc.error.find("no car available") != std::string::npos);
    CHECK(rc.compensated == std::vector<std::string>{"hotel", "flight"});
    CHECK(rc.bookings.empty());
    CHECK(scheduled_activities(c, car) ==
          std::vector<std::string>{"book_flight", "book_hotel", "book_car", "cancel_hotel", "cancel_flight"});

    auto sf = c.wait_for_completion(flight, 20s);
    REQUIRE(sf.status == Status::Completed);
    CHECK(sf.output["status"] == "compensated");
    CHECK(sf.output["compensated"].empty());
    CHECK(scheduled_activities(c, flight) == std::vector<std::string>{"book_flight"});
}

TEST_CASE("monitor continues as new each cycle and stops on its healthy streak or its cycle limit") {
    Engine e(make_registry());
    auto c = e.client();
    MonitorState m;
    m.target = "api";
    m.interval_ms = 20;
    m.stop_after_healthy = 3;
    m.unhealthy_rate = 0.3;
    m.sim.seed = 3;
    auto healthy = c.schedule(kMonitor, m);

    MonitorState capped;
    capped.target = "db";
    capped.interval_ms = 20;
    capped.max_cycles = 4;
    auto limited = c.schedule(kMonitor, capped);

    auto sh = c.wait_for_completion(healthy, 30s);
    REQUIRE(sh.status == Status::Completed);
    auto rh = sh.output.get<MonitorResult>();
    CHECK(rh.reason == "healthy");
    // The cycle where the streak is first reached, computed independently.
    int streak = 0, cycles = 0;
    for (int cycle = 0; streak < 3; ++cycle) {
        streak = expected_healthy(HealthCheck{"api", cycle, 0.3, m.sim}) ? streak + 1 : 0;
        cycles = cycle + 1;
    }
    CHECK(rh.cycles == cycles);
    // continue_as_new keeps only the last cycle's history.
    CHECK(c.history(healthy).size() < 10);

    auto sl = c.wait_for_completion(limited, 30s);
    REQUIRE(sl.status == Status::Completed);
    CHECK(sl.output["reason"] == "max_cycles");
    CHECK(sl.output["cycles"] == 4);
}

TEST_CASE("monitor stops on the external stop event") {
    Engine e(make_registry());
    auto c = e.client();
    MonitorState m;
    m.target = "queue";
    m.interval_ms = 50;
    auto id = c.schedule(kMonitor, m);
    REQUIRE(wait_custom_status(c, id, "cycle", 3));
    c.raise_event(id, "stop", Json{{"by", "ops"}});
    auto s = c.wait_for_completion(id, 20s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output["reason"] == "stopped");
    CHECK(s.output["stopped_by"] == "ops");
    CHECK(s.output["cycles"].get<int>() >= 3);
}

TEST_CASE("a stop event delivered in the same episode as the timer that ends a cycle is not lost") {
    // Suspending holds both the cycle's TimerFired and the stop event in the inbox; resuming
    // delivers them together, so the continue_as_new and the event meet in one episode.
    Engine e(make_registry());
    auto c = e.client();
    MonitorState m;
    m.target = "cache";
    m.interval_ms = 200;
    auto id = c.schedule(kMonitor, m);
    REQUIRE(wait_custom_status(c, id, "cycle", 1));
    c.suspend(id, "test");
    std::this_thread::sleep_for(400ms);  // the timer comes due while suspended
    c.raise_event(id, "stop", "ops");
    c.resume(id, "test");
    auto s = c.wait_for_completion(id, 20s);
    REQUIRE(s.status == Status::Completed);
    CHECK(s.output["reason"] == "stopped");
}

TEST_CASE("register_all registers every example and example inputs exist for each") {
    auto r = make_registry();
    for (const char* name : {kOrderPipeline, kPayment, kWordCount, kApproval, kBookingSaga, kMonitor}) {
        CHECK_MESSAGE(r->orchestrator(name) != nullptr, name);
        CHECK_MESSAGE(!example_input(name).is_null(), name);
    }
    CHECK(r->activity("authorize_payment") != nullptr);
    CHECK(r->activity("cancel_car") != nullptr);
    CHECK(example_input("nope").is_null());
}
