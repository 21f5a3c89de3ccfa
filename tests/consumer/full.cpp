// A program outside the durable source tree that uses the optional libraries of an installed
// durable: durable::postgres (Database::open of a postgresql:// URL) and durable::http (the
// /metrics, /healthz, /readyz endpoint). Runs a one-activity orchestration on the database it
// is given, then reads its own /readyz and /metrics over a plain socket. Exits 0 only when
// both answered as a healthy host's would.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <durable/durable.hpp>
#include <durable/http.hpp>
#include <memory>
#include <string>

#include "greet.hpp"

namespace {

// The whole answer to `GET path` from 127.0.0.1:port (HTTP/1.0: the server closes when done).
std::string get(int port, const std::string& path) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return {};
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string out;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        if (::send(fd, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size())) {
            char buf[4096];
            ssize_t n;
            while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: durable_consumer_full DATABASE (a file or a postgresql:// URL)\n");
        return 2;
    }
    try {
        auto db = durable::Database::open(argv[1]);
        durable::Host host(db, consumer::greet_registry());
        host.start();
        durable::http::HttpOptions options;
        options.listen = "127.0.0.1:0";
        durable::http::HttpServer server(options);
        durable::http::add_host_routes(server, host);
        server.start();

        auto [id, state] = consumer::run_greet(host);
        auto ready = get(server.port(), "/readyz");
        auto metrics = get(server.port(), "/metrics");
        server.stop();
        host.stop();

        if (state.status != durable::Status::Completed || state.output != "hello consumer") {
            std::fprintf(stderr, "durable_consumer_full: instance %s ended with output %s\n", id.c_str(),
                         state.output.dump().c_str());
            return 1;
        }
        if (ready.find(" 200 ") == std::string::npos || metrics.find("durable_instances_completed_total") == std::string::npos) {
            std::fprintf(stderr, "durable_consumer_full: /readyz said:\n%s\n/metrics said:\n%.400s\n", ready.c_str(),
                         metrics.c_str());
            return 1;
        }
        std::printf("%s on %s, served /readyz and /metrics\n", state.output.get<std::string>().c_str(),
                    db.info().store.c_str());
        return 0;
    } catch (const durable::Error& e) {
        std::fprintf(stderr, "durable_consumer_full: %s\n", e.what());
        return 1;
    }
}
