// orchestrations/booking.hpp — a saga: book a flight, a hotel and a car, or undo them all.
//
// `booking_saga` books the flight, then the hotel, then the car. When a step fails (its
// provider refuses, or transient failures outlast the retries), the steps already booked are
// compensated in reverse order (cancel the hotel, then the flight) and the trip ends with
// status "compensated", naming the failed step. Compensations are retried durably; if one
// still fails the instance fails, naming the booking left behind for a human.
//
// Test hook: `fail_at` = "flight", "hotel" or "car" makes that provider refuse the booking.
#pragma once

#include <string>
#include <vector>

#include <durable/durable.hpp>

#include "orchestrations/simulation.hpp"

namespace durable::orchestrations {

inline constexpr const char* kBookingSaga = "booking_saga";

struct TripRequest {
    std::string trip_id;
    std::string customer;
    std::string destination = "Lisbon";
    std::string fail_at;  // "", "flight", "hotel" or "car"
    Simulation sim;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TripRequest, trip_id, customer, destination, fail_at, sim)

struct BookingRequest {
    std::string trip_id;
    std::string kind;  // flight, hotel, car
    std::string destination;
    bool refuse = false;
    Simulation sim;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BookingRequest, trip_id, kind, destination, refuse, sim)

struct Booking {
    std::string kind;
    std::string confirmation;
    std::string host;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Booking, kind, confirmation, host)

struct TripResult {
    std::string trip_id;
    std::string status;                    // "booked" or "compensated"
    std::vector<Booking> bookings;         // what is booked at the end
    std::vector<std::string> compensated;  // kinds cancelled, in the order they were cancelled
    std::string failed_step;
    std::string error;
    std::string host;                      // the host that ran the last step
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TripResult, trip_id, status, bookings, compensated, failed_step, error,
                                                host)

Task<TripResult> booking_saga(OrchestrationContext& ctx, TripRequest request);

// Registers booking_saga and its activities (book_flight, book_hotel, book_car and
// cancel_flight, cancel_hotel, cancel_car).
void register_booking(Registry& registry);

}  // namespace durable::orchestrations
