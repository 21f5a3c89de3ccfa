// server/grpc_runtime.hpp — process-wide settings of the gRPC runtime the sidecar uses.
#pragma once

namespace durable::server {

// Turns off abseil's mutex deadlock detection, which Debian's abseil (built without NDEBUG)
// leaves on: every lock gRPC takes then updates a global lock-order graph, measured at ~5% of
// the sidecar's CPU (GraphCycles in `perf`). gRPC's own locking is tested upstream; our code
// does not use absl::Mutex. Idempotent; called by the server and the protocol worker.
void tune_grpc_runtime();

}  // namespace durable::server
