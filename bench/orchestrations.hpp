// bench/orchestrations.hpp — the benchmark's own trivial orchestrations and activities.
//
// The work itself is deliberately nothing (add one), so a workload measures the runtime:
// scheduling, episodes, commits, leases. Three orchestrations:
//   bench.sequence  {"steps": n}  calls n activities one after another; the last one
//                                 returns the host it ran on, so the output
//                                 {"v": n, "host": "<host label>"} names the host that
//                                 completed the instance (W5's per-host share);
//   bench.fanout    {"width": w}  calls w activities at once, joins them; output is
//                                 1 + 2 + ... + w;
//   bench.idle      (no input)    waits for event "go" (an integer v); output is v + 1.
// Each activity execution can append its idempotency key to a log file (W4 counts
// re-executions as lines minus distinct keys). The log is written with one write(2) per
// execution, so it survives a SIGKILL of the process (the data is in the page cache).
#pragma once

#include <durable/durable.hpp>

#include <memory>
#include <string>

namespace durable::bench {

inline constexpr const char* kSequence = "bench.sequence";
inline constexpr const char* kFanout = "bench.fanout";
inline constexpr const char* kIdle = "bench.idle";

// The registry every bench host uses.
std::shared_ptr<Registry> make_registry();

// The label bench.sequence's last activity reports (the host id). Set before hosts start.
void set_host_label(const std::string& label);

// Appends each activity execution's idempotency key to the file at `path` (opened for
// append). Call before hosts start; not at all for workloads that do not count executions.
void set_execution_log(const std::string& path);

// Inputs, and checks of outputs (an empty string means the output is right).
Json sequence_input(int steps);
Json fanout_input(int width);
std::string check_sequence_output(const Json& output, int steps);
std::string check_fanout_output(const Json& output, int width);

}  // namespace durable::bench
