// hello — the smallest durable program: register an orchestration and an activity, start a
// host, schedule an instance, wait for its result. One process, one database file.
//
//   ./hello [DB_FILE]        (default: hello.db in the current directory)
//
// Run it twice: the second run finds the first run's instance by its id and prints the
// same result without running anything again (scheduling an existing id is a no-op).
#include <durable/durable.hpp>

#include <cstdio>
#include <string>
#include <vector>

using namespace std::chrono_literals;

// An activity: ordinary code, may do I/O; runs at least once.
std::string greet(const std::string& city) {
    return "Hello, " + city + "!";
}

// An orchestrator: deterministic code that decides what runs; every decision is recorded,
// so after a crash it is replayed from history instead of being run again.
durable::Task<std::vector<std::string>> greet_cities(durable::OrchestrationContext& ctx,
                                                     std::vector<std::string> cities) {
    std::vector<std::string> greetings;
    for (const auto& city : cities) {
        auto greeting = co_await ctx.call_activity<std::string>("greet", city);
        greetings.push_back(greeting);
    }
    co_return greetings;
}

int main(int argc, char** argv) {
    std::string path = argc > 1 ? argv[1] : "hello.db";
    try {
        auto registry = std::make_shared<durable::Registry>();
        registry->add_activity("greet", greet);
        registry->add_orchestrator("greet_cities", greet_cities);

        auto db = durable::Database::open(path);
        durable::Host host(db, registry);
        host.start();

        auto client = host.client();
        durable::ScheduleOptions options;
        options.instance_id = "hello-1";
        auto id = client.schedule("greet_cities", std::vector<std::string>{"Tokyo", "Seattle", "London"}, options);
        auto state = client.wait_for_completion(id, 30s);
        host.stop();

        if (state.status != durable::Status::Completed) {
            std::fprintf(stderr, "hello: instance %s ended %s: %s\n", id.c_str(),
                         std::string(durable::to_string(state.status)).c_str(), state.error.dump().c_str());
            return 1;
        }
        std::printf("instance %s completed:\n", id.c_str());
        for (const auto& greeting : state.output) std::printf("  %s\n", greeting.get<std::string>().c_str());
        return 0;
    } catch (const durable::Error& e) {
        std::fprintf(stderr, "hello: %s\n", e.what());
        return 1;
    }
}
