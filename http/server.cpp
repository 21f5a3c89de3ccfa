// The HTTP server: cpp-httplib behind durable's own Request/Response, routes by exact path or
// prefix, bearer-token check before any route.
#include <httplib.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <nlohmann/json.hpp>
#include <fmt/format.h>
#include <fstream>
#include <spdlog/spdlog.h>
#include <thread>

#include "durable/errors.hpp"
#include "durable/host.hpp"
#include "durable/http.hpp"
#include "store/named_thread.hpp"

namespace durable::http {
namespace {

bool iequals(const std::string& a, const std::string& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

// Compares without an early exit, so the time taken says nothing about the token.
bool same_secret(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

bool is_loopback(const std::string& host) {
    return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

bool is_api(const std::string& path) { return path.rfind("/api/", 0) == 0; }

// An error answer: JSON under /api/ (scripts and the dashboard read it), text elsewhere.
void set_error(httplib::Response& out, const std::string& path, int status, const std::string& code,
               const std::string& message) {
    out.status = status;
    if (is_api(path)) {
        nlohmann::json body{{"error", {{"code", code}, {"message", message}}}};
        out.set_content(body.dump() + "\n", "application/json");
    } else {
        out.set_content(message + "\n", "text/plain; charset=utf-8");
    }
}

class ChunkSink final : public StreamSink {
public:
    ChunkSink(httplib::DataSink& sink, const std::atomic<bool>& stopping) : sink_(sink), stopping_(stopping) {}
    bool write(std::string_view chunk) override {
        if (!open()) return false;
        if (!sink_.write(chunk.data(), chunk.size())) {
            broken_ = true;
            return false;
        }
        return true;
    }
    bool open() const override {
        return !broken_ && !stopping_.load(std::memory_order_relaxed) && sink_.is_writable();
    }

private:
    httplib::DataSink& sink_;
    const std::atomic<bool>& stopping_;
    bool broken_ = false;
};

}  // namespace

std::string Request::header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
        if (iequals(k, name)) return v;
    }
    return {};
}

struct HttpServer::Impl {
    struct Route {
        std::string method, path;
        Handler handler;
        Access access = Access::Token;
    };
    HttpOptions options;
    std::string host;
    int port = 0;
    httplib::Server server;
    std::vector<Route> routes;
    std::thread thread;
    bool started = false;
    std::atomic<bool> stopping{false};  // set by stop(): streams end

    const Route* find(const std::string& method, const std::string& path) const {
        const Route* best = nullptr;
        for (const auto& r : routes) {
            if (r.method != method) continue;
            bool prefix = r.path.size() > 1 && r.path.back() == '/';  // "/" alone is the root page
            bool match = prefix ? path.rfind(r.path, 0) == 0 : path == r.path;
            if (match && (!best || r.path.size() > best->path.size())) best = &r;
        }
        return best;
    }

    void serve(const httplib::Request& in, httplib::Response& out) const {
        Request req;
        req.method = in.method;
        req.path = in.path;
        req.raw_path = in.target.substr(0, in.target.find('?'));
        req.body = in.body;
        for (const auto& [k, v] : in.params) req.query.emplace(k, v);
        for (const auto& [k, v] : in.headers) req.headers.emplace(k, v);
        Response res;
        const Route* r = find(req.method, req.path);
        if (!options.bearer_token.empty() && !(r && r->access == Access::Public)) {
            std::string auth = req.header("Authorization");
            const std::string scheme = "Bearer ";
            bool ok = auth.size() > scheme.size() && iequals(auth.substr(0, scheme.size()), scheme) &&
                      same_secret(auth.substr(scheme.size()), options.bearer_token);
            if (!ok) {
                out.set_header("WWW-Authenticate", "Bearer");
                set_error(out, req.path, 401, "unauthorized", "unauthorized: send 'Authorization: Bearer <token>'");
                return;
            }
        }
        if (!r) {
            bool other_method = false;
            for (const char* m : {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"}) {
                if (m != req.method && find(m, req.path)) other_method = true;
            }
            if (other_method) {
                set_error(out, req.path, 405, "method_not_allowed", "method not allowed");
            } else {
                set_error(out, req.path, 404, "not_found", "not found");
            }
            return;
        }
        try {
            r->handler(req, res);
        } catch (const std::exception& e) {
            spdlog::error("http: {} {} failed: {}", req.method, req.path, e.what());
            res = Response{};
            res.status = 500;
            res.body = fmt::format("internal error: {}\n", e.what());
        }
        out.status = res.status;
        for (const auto& [k, v] : res.headers) out.set_header(k, v);
        if (res.stream) {
            auto stream = std::move(res.stream);
            const std::atomic<bool>& stop_flag = stopping;
            out.set_chunked_content_provider(res.content_type, [stream, &stop_flag](std::size_t, httplib::DataSink& sink) {
                ChunkSink chunks(sink, stop_flag);
                try {
                    stream(chunks);
                } catch (const std::exception& e) {
                    spdlog::warn("http: a stream ended with an error: {}", e.what());
                }
                sink.done();
                return true;
            });
            return;
        }
        out.set_content(res.body, res.content_type);
    }
};

HttpServer::HttpServer(HttpOptions options) : impl_(std::make_unique<Impl>()) {
    impl_->options = std::move(options);
    const auto& listen = impl_->options.listen;
    auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0) {
        throw InvalidInput(fmt::format("HTTP listen address '{}' is not host:port (e.g. 127.0.0.1:9464)", listen));
    }
    impl_->host = listen.substr(0, colon);
    if (impl_->host.size() > 2 && impl_->host.front() == '[' && impl_->host.back() == ']') {
        impl_->host = impl_->host.substr(1, impl_->host.size() - 2);
    }
    try {
        std::size_t used = 0;
        impl_->port = std::stoi(listen.substr(colon + 1), &used);
        if (used != listen.size() - colon - 1 || impl_->port < 0 || impl_->port > 65535) throw std::out_of_range("port");
    } catch (const std::exception&) {
        throw InvalidInput(fmt::format("HTTP listen address '{}' has no valid port (0-65535)", listen));
    }
    if (impl_->options.threads < 1) throw InvalidInput("HttpOptions::threads must be at least 1");
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::route(const std::string& method, const std::string& path, Handler handler, Access access) {
    if (impl_->started) throw InvalidInput(fmt::format("route {} {} added after the HTTP server started", method, path));
    impl_->routes.push_back(Impl::Route{method, path, std::move(handler), access});
}

void HttpServer::start() {
    auto& i = *impl_;
    if (i.started) return;
    int threads = i.options.threads;
    i.server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
    i.server.set_read_timeout(std::chrono::seconds(10));
    // httplib writes headers and body separately: with Nagle's algorithm a keep-alive client's
    // delayed ACK holds every small answer for ~40 ms.
    i.server.set_tcp_nodelay(true);
    auto dispatch = [&i](const httplib::Request& req, httplib::Response& res) { i.serve(req, res); };
    i.server.Get(".*", dispatch);
    i.server.Post(".*", dispatch);
    i.server.Put(".*", dispatch);
    i.server.Delete(".*", dispatch);
    if (i.port == 0) {
        i.port = i.server.bind_to_any_port(i.host);
        if (i.port <= 0) throw Error(fmt::format("could not bind an HTTP port on {}", i.host));
    } else if (!i.server.bind_to_port(i.host, i.port)) {
        throw Error(fmt::format("could not listen on {}:{} (in use, or not an address of this machine)", i.host, i.port));
    }
    if (!is_loopback(i.host) && i.options.bearer_token.empty()) {
        spdlog::warn("http: serving {}:{} beyond loopback without a bearer token", i.host, i.port);
    }
    i.started = true;
    i.thread = durable::detail::named_thread("durable-http", [&i] { i.server.listen_after_bind(); });
    spdlog::info("http: serving on {}:{}", i.host, i.port);
}

void HttpServer::stop() {
    auto& i = *impl_;
    if (!i.started) return;
    i.stopping = true;  // streams see it and return; the pool's threads then finish
    i.server.stop();
    if (i.thread.joinable()) i.thread.join();
    i.started = false;
    i.stopping = false;
}

int HttpServer::port() const { return impl_->port; }

const std::string& HttpServer::host() const { return impl_->host; }

void add_host_routes(HttpServer& server, Host& host) {
    server.route("GET", "/metrics", [&host](const Request&, Response& res) {
        res.content_type = "text/plain; version=0.0.4; charset=utf-8";
        res.body = host.metrics_text();
    });
    server.route("GET", "/healthz", [](const Request&, Response& res) { res.body = "ok\n"; });
    server.route("GET", "/readyz", [&host](const Request&, Response& res) {
        auto r = host.readiness();
        if (r.ready) {
            res.body = "ready\n";
            return;
        }
        res.status = 503;
        for (const auto& p : r.problems) res.body += p + "\n";
    });
}

std::string read_token_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw InvalidInput(fmt::format("cannot read the token file '{}'", path));
    std::string line;
    std::getline(in, line);
    auto b = line.find_first_not_of(" \t\r\n");
    auto e = line.find_last_not_of(" \t\r\n");
    if (b == std::string::npos) throw InvalidInput(fmt::format("the token file '{}' is empty", path));
    return line.substr(b, e - b + 1);
}

}  // namespace durable::http
