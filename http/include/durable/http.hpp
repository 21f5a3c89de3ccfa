// durable/http.hpp — the HTTP endpoint of a durable process (library durable_http).
//
// One HttpServer per process, on loopback by default: `durable worker --http 127.0.0.1:9464`
// runs one, and an embedder gets the same by linking durable_http:
//
//     durable::http::HttpServer server({.listen = "127.0.0.1:9464"});
//     durable::http::add_host_routes(server, host);   // /metrics, /healthz, /readyz
//     server.start();
//
// Why not a field of HostOptions: the core library is free of any HTTP stack (it must build
// and link without cpp-httplib, as it does without gRPC or libpq), and one process may run
// several hosts but has one port to serve them on. The core exposes what the endpoint reads
// (Host::metrics_text, Host::readiness, the process's event distributor, span sinks); this
// library serves it.
//
// Routes: `route()` registers a handler for an exact path, or for every path under a prefix
// ending in '/' ("/" itself is exact: the root page); the dashboard (durable/dashboard.hpp) adds /api/v1 and its page the same way,
// before start(). With a bearer token set, every route needs `Authorization: Bearer <token>`
// (401 otherwise; probes send the header too), except routes added as Access::Public (static
// assets with no data in them). Errors under /api/ (401, 404, 405) have JSON bodies
// ({"error": {"code", "message"}}).
//
// Thread safety: configure (route) before start(); start() and stop() from the owning
// thread. Handlers run on the server's own threads (a small pool) and must be thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace durable {
class Host;
}

namespace durable::http {

struct HttpOptions {
    // host:port to listen on. Port 0 picks a free port (see HttpServer::port()). A non-loopback
    // address serves the network: set a token.
    std::string listen = "127.0.0.1:9464";
    std::string bearer_token;  // empty: no authentication
    int threads = 2;           // requests served at once
};

struct Request {
    std::string method, path, body;
    std::string raw_path;  // the path as sent, %-escapes kept (to split ids that hold '/')
    std::map<std::string, std::string> query;      // decoded query parameters
    std::multimap<std::string, std::string> headers;  // names as sent
    // The value of header `name` (case-insensitive), or empty.
    std::string header(const std::string& name) const;
};

// Where a streamed response writes (Response::stream).
class StreamSink {
public:
    virtual ~StreamSink() = default;
    // Sends `chunk` now; false when the client is gone (stop writing).
    virtual bool write(std::string_view chunk) = 0;
    // False once the client is gone or the server is stopping: the stream must end soon.
    virtual bool open() const = 0;
};

struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    // When set, the body is this stream instead of `body` (chunked, not compressed): the server
    // calls it once, on the request's thread, and it writes until it returns. It must return
    // soon after sink.open() turns false (the server's stop() waits for it).
    std::function<void(StreamSink&)> stream;
};

using Handler = std::function<void(const Request&, Response&)>;

// Who may call a route when a bearer token is set.
enum class Access {
    Token,   // only requests carrying the token (every route, unless it says otherwise)
    Public,  // anyone: for static assets that carry no data (the dashboard's page and script)
};

class HttpServer {
public:
    // Throws durable::InvalidInput for a listen address that is not host:port.
    explicit HttpServer(HttpOptions options);
    ~HttpServer();  // stop()
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Serves `handler` for `method` ("GET", "POST", ...) on `path`: exact, or every path under
    // it when it ends in '/'. The longest match wins. Before start() only.
    void route(const std::string& method, const std::string& path, Handler handler, Access access = Access::Token);
    // Binds and starts serving on a thread of its own. Throws durable::Error when the address
    // cannot be bound (in use, not local).
    void start();
    // Stops accepting, finishes what is being served and joins. Idempotent.
    void stop();
    // The port bound (after start()).
    int port() const;
    const std::string& host() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Adds /metrics (Prometheus text, format 0.0.4), /healthz (the process serves: 200 "ok") and
// /readyz (200 "ready", or 503 with one line per problem: see Host::readiness) for `host`,
// which must outlive the server.
void add_host_routes(HttpServer& server, Host& host);

// Reads a bearer token from `path`: the file's first line, without surrounding whitespace.
// Throws durable::InvalidInput if it cannot be read or is empty.
std::string read_token_file(const std::string& path);

}  // namespace durable::http
