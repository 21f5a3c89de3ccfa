// server/pending_call.hpp — a unary RPC answered later, by whichever thread has the answer
// (gRPC's callback API: no thread is parked while the call waits).
//
// The answer is given once: the first finish() (or claim()) wins, later ones do nothing. A
// cancelled call (the caller went away, its deadline passed, the server shut down) is
// finished with CANCELLED at once. The response message belongs to gRPC and is gone once
// the call is finished, so whoever answers claim()s first, then fills the response, then
// calls finish_claimed(): a late answerer finds the claim taken and touches nothing.
//
// The object lives while gRPC has not reported the call done or any answerer holds it.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <grpcpp/grpcpp.h>
#include <memory>
#include <utility>

namespace durable::server {

class PendingCall final : public grpc::ServerUnaryReactor {
public:
    // `on_finish` (may be empty) sees the status the call ends with, before gRPC sends it
    // (e.g. to write the audit record).
    static std::shared_ptr<PendingCall> start(std::function<void(const grpc::Status&)> on_finish = {}) {
        auto call = std::shared_ptr<PendingCall>(new PendingCall(std::move(on_finish)));
        call->self_ = call;
        return call;
    }

    // What the RPC handler returns.
    grpc::ServerUnaryReactor* reactor() { return this; }

    // True for the one caller that may answer.
    bool claim() { return !claimed_.exchange(true); }
    bool claimed() const { return claimed_.load(); }
    // Ends the call with `status`; only after a successful claim().
    void finish_claimed(const grpc::Status& status) {
        if (on_finish_) on_finish_(status);
        on_finish_ = nullptr;
        Finish(status);
    }
    // claim() and finish_claimed() in one; false when the call was answered already.
    bool finish(const grpc::Status& status) {
        if (!claim()) return false;
        finish_claimed(status);
        return true;
    }

    void OnCancel() override { finish(grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled")); }
    void OnDone() override { self_.reset(); }

private:
    explicit PendingCall(std::function<void(const grpc::Status&)> on_finish) : on_finish_(std::move(on_finish)) {}

    std::shared_ptr<PendingCall> self_;  // gRPC's reference, dropped in OnDone
    std::atomic<bool> claimed_{false};
    std::function<void(const grpc::Status&)> on_finish_;  // used by the claimer only
};

}  // namespace durable::server
