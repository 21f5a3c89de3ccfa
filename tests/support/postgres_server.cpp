// A PostgreSQL server for tests: initdb and pg_ctl in a temp dir, or the one .ci/run runs.
#include "support/postgres_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <stdexcept>
#include <vector>

#include "support/process.hpp"

namespace durable::test {
namespace {

std::string bin_dir() {
    const char* b = std::getenv("DURABLE_TEST_PG_BIN");
    return b && *b ? b : "/usr/lib/postgresql/15/bin";
}

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        if (fd >= 0) ::close(fd);
        throw std::runtime_error("cannot find a free port for PostgreSQL");
    }
    int port = ntohs(a.sin_port);
    ::close(fd);
    return port;
}

// Runs a PostgreSQL program (as `postgres` when we are root: the server refuses root).
void run(const std::string& program, const std::vector<std::string>& args, const std::string& log) {
    std::vector<std::string> argv;
    std::string path = bin_dir() + "/" + program;
    std::string exe = path;
    if (::geteuid() == 0) {
        exe = "/usr/sbin/runuser";
        argv = {"-u", "postgres", "--", path};
    }
    argv.insert(argv.end(), args.begin(), args.end());
    Process p(exe, argv, ProcessOptions{log});
    auto done = read_to_end(p, std::chrono::seconds(120));
    if (done.code != 0) {
        throw std::runtime_error(fmt::format("{} failed (exit {}): {}", program, done.code ? *done.code : -1,
                                             read_text(log)));
    }
}

}  // namespace

PostgresServer::PostgresServer(bool password_auth) : socket_(password_auth) {
    std::string pattern = (std::filesystem::temp_directory_path() / "durable-pg-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    if (::geteuid() == 0) {
        passwd* pw = ::getpwnam("postgres");
        if (!pw) throw std::runtime_error("running as root, but there is no `postgres` user to run PostgreSQL as");
        if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) throw std::runtime_error("chown of the PG dir failed");
    }
    std::vector<std::string> init = {"-D", dir_ + "/data", "-U", "postgres", "--no-sync", "-E", "UTF8"};
    if (password_auth) {
        init.insert(init.end(), {"--auth-local=trust", "--auth-host=scram-sha-256"});
    } else {
        init.insert(init.end(), {"-A", "trust"});
    }
    run("initdb", init, dir_ + "-initdb.log");
    port_ = free_port();
    start();
    base_url_ = fmt::format("postgresql://postgres@127.0.0.1:{}", port_);
}

PostgresServer::PostgresServer(External, std::string base_url) : base_url_(std::move(base_url)) {}

PostgresServer::~PostgresServer() {
    if (dir_.empty()) return;
    try {
        pg_ctl({"stop", "-m", "immediate", "-w"});
    } catch (const std::exception&) {
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    std::filesystem::remove(dir_ + "-initdb.log", ec);
    std::filesystem::remove(dir_ + "-ctl.log", ec);
}

PostgresServer& PostgresServer::shared() {
    static std::unique_ptr<PostgresServer> server = [] {
        const char* url = std::getenv("DURABLE_TEST_PG_URL");
        if (url && *url) return std::unique_ptr<PostgresServer>(new PostgresServer(External{}, url));
        return std::make_unique<PostgresServer>();
    }();
    return *server;
}

std::string PostgresServer::url(const std::string& db) const {
    if (socket_) return fmt::format("postgresql:///{}?host={}&port={}&user=postgres", db, dir_, port_);
    return base_url_ + "/" + db;
}

std::string PostgresServer::tcp_url(const std::string& db, const std::string& user,
                                    const std::string& password) const {
    return fmt::format("postgresql://{}:{}@127.0.0.1:{}/{}", user, password, port_, db);
}

void PostgresServer::pg_ctl(const std::vector<std::string>& args) {
    if (dir_.empty()) throw std::runtime_error("this PostgreSQL server is not the test's own; it cannot restart it");
    std::vector<std::string> a = {"-D", dir_ + "/data", "-l", dir_ + "/server.log"};
    a.insert(a.end(), args.begin(), args.end());
    run("pg_ctl", a, dir_ + "-ctl.log");
}

void PostgresServer::start() {
    // fsync off: tests check behaviour, not what survives a power cut; the bench runs with it.
    pg_ctl({"start", "-w", "-t", "60", "-o",
            fmt::format("-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off "
                        "-c shared_buffers=64MB",
                        port_, dir_)});
}

void PostgresServer::restart() {
    pg_ctl({"restart", "-m", "fast", "-w", "-t", "60"});
}

void PostgresServer::stop() {
    pg_ctl({"stop", "-m", "fast", "-w", "-t", "60"});
}

TestDatabase::TestDatabase(PostgresServer& server) : server_(server) {
    static std::atomic<int> counter{0};
    std::random_device rd;
    name_ = fmt::format("durable_test_{}_{}_{:x}", static_cast<long>(::getpid()), counter++, rd() & 0xffffff);
    pqxx::connection c(server_.url("postgres"));
    pqxx::nontransaction tx(c);
    tx.exec("CREATE DATABASE " + name_);
}

TestDatabase::~TestDatabase() {
    try {
        pqxx::connection c(server_.url("postgres"));
        pqxx::nontransaction tx(c);
        tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception&) {
        // The server is gone (a test stopped it): its temp dir goes with it.
    }
}

std::string TestDatabase::scalar(const std::string& sql) const {
    pqxx::connection c(url());
    pqxx::nontransaction tx(c);
    auto r = tx.exec(sql);
    if (r.empty() || r[0][0].is_null()) return {};
    return r[0][0].as<std::string>();
}

void TestDatabase::exec(const std::string& sql) const {
    pqxx::connection c(url());
    pqxx::nontransaction tx(c);
    tx.exec(sql);
}

}  // namespace durable::test
