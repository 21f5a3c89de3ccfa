// store/named_thread.hpp — a std::thread whose name shows in top -H, perf and gdb.
#pragma once

#include <pthread.h>

#include <thread>
#include <utility>

namespace durable::detail {

// `name`: a string literal of at most 15 characters (the kernel's limit).
template <class Body>
std::thread named_thread(const char* name, Body body) {
    return std::thread([name, body = std::move(body)]() mutable {
        pthread_setname_np(pthread_self(), name);
        body();
    });
}

}  // namespace durable::detail
