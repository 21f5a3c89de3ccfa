// A program outside the durable source tree, built against an installed durable (CMake
// package or pkg-config): opens a database, runs a one-activity orchestration on a host and
// prints its output. Exits 0 only when the orchestration completed with the expected output.
#include <cstdio>
#include <string>

#include "greet.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: durable_consumer DB_PATH\n");
        return 2;
    }
    try {
        auto db = durable::Database::open(argv[1]);
        durable::Host host(db, consumer::greet_registry());
        host.start();
        auto [id, state] = consumer::run_greet(host);
        host.stop();

        if (state.status != durable::Status::Completed || state.output != "hello consumer") {
            std::fprintf(stderr, "durable_consumer: instance %s ended %s with output %s\n", id.c_str(),
                         std::string(durable::to_string(state.status)).c_str(), state.output.dump().c_str());
            return 1;
        }
        std::printf("%s\n", state.output.get<std::string>().c_str());
        return 0;
    } catch (const durable::Error& e) {
        std::fprintf(stderr, "durable_consumer: %s\n", e.what());
        return 1;
    }
}
