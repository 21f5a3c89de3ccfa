// Process-wide gRPC runtime settings (see grpc_runtime.hpp).
#include "server/grpc_runtime.hpp"

#include <absl/synchronization/mutex.h>
#include <mutex>

namespace durable::server {

void tune_grpc_runtime() {
    static std::once_flag once;
    std::call_once(once, [] { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); });
}

}  // namespace durable::server
