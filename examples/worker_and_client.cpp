// worker_and_client — two processes on one database file: a worker that runs orchestrations,
// and a client that schedules them and waits for the results.
//
//   ./worker_and_client [DB_FILE] [ORDERS]     (default: worker_and_client.db, 5 orders)
//
// The program forks: the child is the worker (a Host with the example orchestrations from
// orchestrations/), the parent is a standalone Client that knows nothing but the file. The
// parent schedules order pipelines, waits for each, prints who ran it, and finally stops the
// worker with SIGTERM. In real life these are separate programs, perhaps several workers.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <durable/durable.hpp>

#include "orchestrations/orchestrations.hpp"

using namespace std::chrono_literals;
namespace o = durable::orchestrations;

namespace {

// The worker process: runs a host until SIGTERM (waited for with sigwait, no handler).
int run_worker(const std::string& path) {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before the host starts its threads
    prctl(PR_SET_PDEATHSIG, SIGTERM);            // never outlive the client
    try {
        durable::HostOptions options;
        options.host_id = "worker-" + std::to_string(getpid());
        durable::Host host(durable::Database::open(path), o::make_registry(), options);
        o::set_host_label(host.id());
        host.start();
        int sig = 0;
        sigwait(&stop, &sig);
        host.stop();
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "worker: %s\n", e.what());
        return 1;
    }
}

// The client process: a Client on the same file; the worker's host picks the work up.
int run_client(const std::string& path, int orders) {
    durable::Client client(durable::Database::open(path));
    int failures = 0;
    for (int i = 1; i <= orders; ++i) {
        o::Order order;
        order.order_id = "order-" + std::to_string(i);
        order.customer = "ada";
        order.items = {{"book", i, 12.5}};
        durable::ScheduleOptions options;
        options.instance_id = "wc-" + order.order_id;
        auto id = client.schedule(o::kOrderPipeline, order, options);
        auto state = client.wait_for_completion(id, 30s);
        if (state.status != durable::Status::Completed) {
            std::fprintf(stderr, "client: %s ended %s\n", id.c_str(), std::string(durable::to_string(state.status)).c_str());
            ++failures;
            continue;
        }
        auto result = state.output.get<o::OrderResult>();
        std::printf("%s: %s, %.2f charged, tracking %s (run by %s)\n", id.c_str(), result.status.c_str(),
                    result.amount, result.tracking.c_str(), result.host.c_str());
    }
    return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::string path = argc > 1 ? argv[1] : "worker_and_client.db";
    int orders = argc > 2 ? std::atoi(argv[2]) : 5;
    // Create the file once, before forking (a process must fork before it starts threads).
    { durable::Database::open(path); }

    std::fflush(stdout);
    pid_t worker = fork();
    if (worker < 0) {
        std::perror("fork");
        return 1;
    }
    if (worker == 0) _exit(run_worker(path));

    int code = 1;
    try {
        code = run_client(path, orders);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "client: %s\n", e.what());
    }
    kill(worker, SIGTERM);
    int status = 0;
    waitpid(worker, &status, 0);  // the host stops in bounded time
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "worker did not stop cleanly (status %d)\n", status);
        code = 1;
    }
    std::printf("worker stopped; done\n");
    return code;
}
