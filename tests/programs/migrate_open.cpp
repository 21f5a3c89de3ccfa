// migrate_open: opens (creating and migrating if needed) the durable database at argv[1] and
// exits 0; on failure prints the error to stderr and exits 1.
//
// Used by tests that race several processes on one new file. With two more arguments, the
// file descriptors GO and READY, it first writes one byte to READY and then blocks until GO
// reaches end-of-file: the test closes GO once every process is ready, so all of them open
// the file at the same moment.
#include <durable/database.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>

int main(int argc, char** argv) {
    if (argc != 2 && argc != 4) {
        std::fprintf(stderr, "usage: migrate_open DB_PATH [GO_FD READY_FD]\n");
        return 2;
    }
    if (argc == 4) {
        int go = std::atoi(argv[2]);
        int ready = std::atoi(argv[3]);
        char byte = 'r';
        if (write(ready, &byte, 1) != 1) {
            std::perror("migrate_open: writing to the ready pipe");
            return 2;
        }
        close(ready);
        for (;;) {
            ssize_t n = read(go, &byte, 1);
            if (n == 0) break;  // the test closed GO: start
            if (n < 0 && errno != EINTR) {
                std::perror("migrate_open: waiting on the go pipe");
                return 2;
            }
        }
        close(go);
    }
    try {
        auto db = durable::Database::open(argv[1]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "migrate_open: %s\n", e.what());
        return 1;
    }
    return 0;
}
