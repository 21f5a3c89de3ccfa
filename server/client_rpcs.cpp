// The client RPCs of TaskHubSidecarService, each mapped onto a durable::Client operation.
#include <algorithm>
#include <fmt/format.h>

#include "server/call_audit.hpp"
#include "server/protocol_state.hpp"
#include "server/sidecar_service.hpp"

namespace durable::server {
namespace {

[[noreturn]] void fail(grpc::StatusCode code, std::string message) { throw RpcError{code, std::move(message)}; }

void require_id(const std::string& id) {
    if (id.empty()) fail(grpc::StatusCode::INVALID_ARGUMENT, "instanceId is empty");
}

// A JSON payload field: absent or "" is null; malformed JSON or too large is refused.
Json json_field(const google::protobuf::StringValue* v, bool present, std::string_view field, std::size_t limit) {
    if (!present || v->value().empty()) return Json();
    if (v->value().size() > limit) {
        fail(grpc::StatusCode::RESOURCE_EXHAUSTED,
             fmt::format("{} is {} bytes, over the {}-byte limit; pass a reference to the data instead", field,
                         v->value().size(), limit));
    }
    try {
        return Json::parse(v->value());
    } catch (const Json::parse_error& e) {
        fail(grpc::StatusCode::INVALID_ARGUMENT, fmt::format("{} is not JSON: {}", field, e.what()));
    }
}

std::chrono::system_clock::time_point from_ms(std::int64_t ms) {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

}  // namespace

SidecarService::SidecarService(Database db, Host& host, std::shared_ptr<const Registry> registry,
                               ServerOptions options, std::shared_ptr<WorkItemHub> hub)
    : db_(db),
      registry_(std::move(registry)),
      options_(std::move(options)),
      host_client_(host.client()),
      plain_client_(db),
      hub_(std::move(hub)) {}

Client& SidecarService::client_for(const std::string& name) {
    // A default orchestrator (remote code) runs every name here: created leased to this host.
    return registry_->orchestrator(name) || registry_->default_orchestrator() ? host_client_ : plain_client_;
}

grpc::Status SidecarService::status_of(std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const RpcError& e) {
        return grpc::Status(e.code, e.message);
    } catch (const InstanceNotFound& e) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND, e.what());
    } catch (const InstanceExists& e) {
        return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, e.what());
    } catch (const UnknownOrchestration& e) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, e.what());
    } catch (const InvalidInput& e) {
        // Inputs are checked before the Client is called: what it still refuses is the
        // instance's state (finished, still running).
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, e.what());
    } catch (const StoreError& e) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, fmt::format("the database: {}", e.what()));
    } catch (const std::exception& e) {
        return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
    }
}

template <class Body>
grpc::Status SidecarService::audited(grpc::ServerContext* ctx, const char* method, Body&& body) {
    CallAudit audit(ctx, plain_client_, options_.actor, method);
    if (stopping()) return audit.finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
    try {
        return audit.finish(body(audit));
    } catch (...) {
        return audit.finish(status_of(std::current_exception()));
    }
}

grpc::Status SidecarService::Hello(grpc::ServerContext*, const google::protobuf::Empty*, google::protobuf::Empty*) {
    if (stopping()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping");
    return grpc::Status::OK;
}

grpc::ServerUnaryReactor* SidecarService::StartInstance(grpc::CallbackServerContext* ctx,
                                                        const ::CreateInstanceRequest* req,
                                                        ::CreateInstanceResponse* resp) {
    // Answered by the commit that makes the create durable (Client::schedule_async): no thread
    // waits for it.
    auto audit = std::make_shared<CallAudit>(ctx, plain_client_, options_.actor, "StartInstance");
    auto call = PendingCall::start([audit](const grpc::Status& s) { audit->finish(s); });
    try {
        if (stopping()) fail(grpc::StatusCode::UNAVAILABLE, "the server is stopping");
        if (req->name().empty()) fail(grpc::StatusCode::INVALID_ARGUMENT, "name is empty: which orchestration?");
        Json input = json_field(&req->input(), req->has_input(), "input", options_.max_payload_bytes);
        ScheduleOptions so;
        if (!req->instanceid().empty()) {
            so.instance_id = req->instanceid();
            audit->instance(req->instanceid());
        }
        if (req->has_scheduledstarttimestamp()) {
            auto ms = to_ms(req->scheduledstarttimestamp());
            if (ms > 0) so.start_at = from_ms(ms);  // epoch 0: now
        }
        if (req->has_version() && !req->version().value().empty()) so.version = req->version().value();
        so.correlation_id = audit->correlation_id();
        // Ids are not reused: a start with an id in use is refused, atomically with the create.
        so.if_exists = IfExists::Fail;
        client_for(req->name())
            .schedule_async(req->name(), input, so,
                            [call, audit, resp](std::optional<ScheduleResult> r, std::exception_ptr error) {
                                if (!call->claim()) return;  // cancelled: resp is gone
                                if (error) return call->finish_claimed(status_of(error));
                                audit->instance(r->id);
                                audit->items(1);
                                resp->set_instanceid(r->id);
                                call->finish_claimed(grpc::Status::OK);
                            });
    } catch (...) {
        call->finish(status_of(std::current_exception()));
    }
    return call->reactor();
}

grpc::Status SidecarService::GetInstance(grpc::ServerContext* ctx, const ::GetInstanceRequest* req,
                                         ::GetInstanceResponse* resp) {
    return audited(ctx, "GetInstance", [&](CallAudit& audit) {
        require_id(req->instanceid());
        audit.instance(req->instanceid());
        auto s = plain_client_.get_status(req->instanceid());
        resp->set_exists(s.has_value());
        if (s) {
            fill_state(*s, req->getinputsandoutputs(), resp->mutable_orchestrationstate());
            audit.items(1);
        }
        return grpc::Status::OK;
    });
}

grpc::Status SidecarService::wait_for(grpc::ServerContext* ctx, const char* method, const ::GetInstanceRequest* req,
                                      ::GetInstanceResponse* resp, bool completion) {
    return audited(ctx, method, [&](CallAudit& audit) {
        require_id(req->instanceid());
        audit.instance(req->instanceid());
        if (!plain_client_.get_status(req->instanceid())) {
            resp->set_exists(false);  // as GetInstance: the SDKs read "no such instance" from it
            return grpc::Status::OK;
        }
        // Slices of a wait woken by the commit; between them, the call's cancellation, its
        // deadline and the server's shutdown are looked at.
        for (;;) {
            if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "the caller cancelled the wait");
            if (stopping()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping");
            if (std::chrono::system_clock::now() >= ctx->deadline()) {
                return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the call's deadline passed while waiting");
            }
            try {
                auto s = completion ? host_client_.wait_for_completion(req->instanceid(), options_.wait_slice)
                                    : host_client_.wait_for_start(req->instanceid(), options_.wait_slice);
                resp->set_exists(true);
                fill_state(s, req->getinputsandoutputs(), resp->mutable_orchestrationstate());
                audit.items(1);
                return grpc::Status::OK;
            } catch (const Timeout&) {
                // not yet: next slice
            } catch (const InstanceNotFound&) {
                resp->set_exists(false);  // purged while waited for
                return grpc::Status::OK;
            }
        }
    });
}

grpc::Status SidecarService::WaitForInstanceStart(grpc::ServerContext* ctx, const ::GetInstanceRequest* req,
                                                  ::GetInstanceResponse* resp) {
    return wait_for(ctx, "WaitForInstanceStart", req, resp, false);
}

grpc::ServerUnaryReactor* SidecarService::WaitForInstanceCompletion(grpc::CallbackServerContext* ctx,
                                                                    const ::GetInstanceRequest* req,
                                                                    ::GetInstanceResponse* resp) {
    // No thread waits: the finishing commit (Client::on_completion) answers the call. Cancelled
    // calls end at once (PendingCall); waits still open at shutdown end with UNAVAILABLE.
    auto audit = std::make_shared<CallAudit>(ctx, plain_client_, options_.actor, "WaitForInstanceCompletion");
    auto call = PendingCall::start([audit](const grpc::Status& s) { audit->finish(s); });
    if (stopping()) {
        call->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
        return call->reactor();
    }
    if (req->instanceid().empty()) {
        call->finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "instanceId is empty"));
        return call->reactor();
    }
    audit->instance(req->instanceid());
    {
        std::lock_guard lock(waits_->mu);
        waits_->calls.emplace(call.get(), call);
    }
    if (stopping()) {  // begin_shutdown may have run before the call was listed
        call->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
    }
    auto forget = [waits = waits_, key = call.get()] {  // may run after the service is gone
        std::lock_guard lock(waits->mu);
        waits->calls.erase(key);
    };
    const auto left = ctx->deadline() - std::chrono::system_clock::now();
    const auto timeout = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(left),
                                    std::chrono::milliseconds(0), std::chrono::milliseconds(std::chrono::hours(24)));
    const bool with_payloads = req->getinputsandoutputs();
    host_client_.on_completion(
        req->instanceid(),
        [call, audit, resp, with_payloads, forget](std::optional<InstanceState> s, std::exception_ptr error) {
            forget();
            if (!call->claim()) return;  // cancelled or ended by shutdown: resp is gone
            grpc::Status status;
            if (s) {
                resp->set_exists(true);
                fill_state(*s, with_payloads, resp->mutable_orchestrationstate());
                audit->items(1);
            } else {
                try {
                    std::rethrow_exception(error);
                } catch (const InstanceNotFound&) {
                    resp->set_exists(false);  // as GetInstance: the SDKs read "no such instance" from it
                } catch (const Timeout&) {
                    status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the call's deadline passed while waiting");
                } catch (const StoreError& e) {
                    status = grpc::Status(grpc::StatusCode::UNAVAILABLE, fmt::format("the database: {}", e.what()));
                } catch (const std::exception& e) {
                    status = grpc::Status(grpc::StatusCode::INTERNAL, e.what());
                }
            }
            call->finish_claimed(status);
        },
        timeout);
    return call->reactor();
}

void SidecarService::begin_shutdown() {
    stopping_.store(true);
    hub_->end_streams();
    std::vector<std::shared_ptr<PendingCall>> waits;
    {
        std::lock_guard lock(waits_->mu);
        for (auto& [key, weak] : waits_->calls) {
            if (auto call = weak.lock()) waits.push_back(std::move(call));
        }
        waits_->calls.clear();
    }
    for (auto& call : waits) call->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
}

grpc::Status SidecarService::RaiseEvent(grpc::ServerContext* ctx, const ::RaiseEventRequest* req,
                                        ::RaiseEventResponse*) {
    return audited(ctx, "RaiseEvent", [&](CallAudit& audit) {
        require_id(req->instanceid());
        audit.instance(req->instanceid());
        if (req->name().empty()) fail(grpc::StatusCode::INVALID_ARGUMENT, "the event name is empty");
        Json payload = json_field(&req->input(), req->has_input(), "input", options_.max_payload_bytes);
        host_client_.raise_event(req->instanceid(), req->name(), payload);
        audit.items(1);
        return grpc::Status::OK;
    });
}

grpc::Status SidecarService::TerminateInstance(grpc::ServerContext* ctx, const ::TerminateRequest* req,
                                               ::TerminateResponse*) {
    return audited(ctx, "TerminateInstance", [&](CallAudit& audit) {
        require_id(req->instanceid());
        audit.instance(req->instanceid());
        Json output = json_field(&req->output(), req->has_output(), "output", options_.max_payload_bytes);
        // The instance's output becomes the reason: a JSON string is kept as that string (its
        // output then reads back as the same JSON text); other JSON as its text.
        std::string reason = output.is_string() ? output.get<std::string>() : output.is_null() ? "" : output.dump();
        host_client_.terminate(req->instanceid(), reason, req->recursive());
        audit.items(1);
        return grpc::Status::OK;
    });
}

grpc::Status SidecarService::SuspendInstance(grpc::ServerContext* ctx, const ::SuspendRequest* req,
                                             ::SuspendResponse*) {
    return audited(ctx, "SuspendInstance", [&](CallAudit& audit) {
        require_id(req->instanceid());
        audit.instance(req->instanceid());
        host_client_.suspend(req->instanceid(), req->has_reason() ? req->reason().value() : "");
        audit.items(1);
        return grpc::Status::OK;
    });
}

grpc::Status SidecarService::ResumeInstance(grpc::ServerContext* ctx, const ::ResumeRequest* req,
                                            ::ResumeResponse*) {
    return audited(ctx, "ResumeInstance", [&](CallAudit& audit) {
        require_id(req->instanceid());
        audit.instance(req->instanceid());
        host_client_.resume(req->instanceid(), req->has_reason() ? req->reason().value() : "");
        audit.items(1);
        return grpc::Status::OK;
    });
}

grpc::Status SidecarService::QueryInstances(grpc::ServerContext* ctx, const ::QueryInstancesRequest* req,
                                            ::QueryInstancesResponse* resp) {
    return audited(ctx, "QueryInstances", [&](CallAudit& audit) {
        const auto& q = req->query();
        QueryFilter f;
        for (int s : q.runtimestatus()) {
            auto st = from_proto(static_cast<::OrchestrationStatus>(s));
            if (!st) fail(grpc::StatusCode::INVALID_ARGUMENT, fmt::format("runtimeStatus {} is never reported", s));
            f.statuses.push_back(*st);
        }
        if (q.has_createdtimefrom()) f.created_from = from_ms(to_ms(q.createdtimefrom()));
        if (q.has_createdtimeto()) f.created_to = from_ms(to_ms(q.createdtimeto()));
        if (q.maxinstancecount() < 0) fail(grpc::StatusCode::INVALID_ARGUMENT, "maxInstanceCount is negative");
        std::size_t page = q.maxinstancecount() == 0 ? 100 : static_cast<std::size_t>(q.maxinstancecount());
        page = std::min<std::size_t>(page, 1000);
        std::optional<std::string> after;
        if (q.has_continuationtoken() && !q.continuationtoken().value().empty()) after = q.continuationtoken().value();
        std::string prefix = q.has_instanceidprefix() ? q.instanceidprefix().value() : "";
        // A prefix filters pages of the id-ordered query; the token is the last id looked at,
        // so a page may come back short (even empty) with a token to go on from.
        std::size_t scanned = 0;
        for (;;) {
            auto p = plain_client_.query(f, page, after);
            bool full = false, left_over = false;
            for (std::size_t i = 0; i < p.instances.size(); ++i) {
                auto& s = p.instances[i];
                ++scanned;
                after = s.id;
                if (s.id.compare(0, prefix.size(), prefix) != 0) continue;
                fill_state(s, q.fetchinputsandoutputs(), resp->add_orchestrationstate());
                if (static_cast<std::size_t>(resp->orchestrationstate_size()) == page) {
                    full = true;
                    left_over = i + 1 < p.instances.size();
                    break;
                }
            }
            if (!left_over && !p.next) break;  // nothing after this page
            if (full || scanned >= 10 * page) {
                resp->mutable_continuationtoken()->set_value(*after);
                break;
            }
        }
        audit.items(resp->orchestrationstate_size());
        return grpc::Status::OK;
    });
}

grpc::Status SidecarService::PurgeInstances(grpc::ServerContext* ctx, const ::PurgeInstancesRequest* req,
                                            ::PurgeInstancesResponse* resp) {
    return audited(ctx, "PurgeInstances", [&](CallAudit& audit) {
        if (req->request_case() == ::PurgeInstancesRequest::kInstanceId) {
            require_id(req->instanceid());
            audit.instance(req->instanceid());
            bool purged = plain_client_.purge(req->instanceid());
            resp->set_deletedinstancecount(purged ? 1 : 0);
            audit.items(purged ? 1 : 0);
            return grpc::Status::OK;
        }
        if (req->request_case() != ::PurgeInstancesRequest::kPurgeInstanceFilter) {
            fail(grpc::StatusCode::INVALID_ARGUMENT, "neither instanceId nor purgeInstanceFilter is set");
        }
        const auto& pf = req->purgeinstancefilter();
        QueryFilter f;
        for (int s : pf.runtimestatus()) {
            auto st = from_proto(static_cast<::OrchestrationStatus>(s));
            if (!st || !is_terminal(*st)) {
                fail(grpc::StatusCode::INVALID_ARGUMENT,
                     fmt::format("runtimeStatus {} cannot be purged: only COMPLETED, FAILED and TERMINATED instances are",
                                 s));
            }
            f.statuses.push_back(*st);
        }
        if (f.statuses.empty()) f.statuses = {Status::Completed, Status::Failed, Status::Terminated};
        if (pf.has_createdtimefrom()) f.created_from = from_ms(to_ms(pf.createdtimefrom()));
        if (pf.has_createdtimeto()) f.created_to = from_ms(to_ms(pf.createdtimeto()));
        // Page by page, each purge durable on its own: an instance that started running again
        // meanwhile cannot be (it is not finished), and is skipped.
        std::int64_t deleted = 0;
        std::optional<std::string> after;
        for (;;) {
            auto p = plain_client_.query(f, 500, after);
            for (auto& s : p.instances) {
                try {
                    if (plain_client_.purge(s.id)) ++deleted;
                } catch (const InvalidInput&) {
                    // running again (continue-as-new is not final): not purged
                }
            }
            if (!p.next) break;
            after = p.next;
        }
        resp->set_deletedinstancecount(static_cast<std::int32_t>(deleted));
        audit.items(deleted);
        return grpc::Status::OK;
    });
}

}  // namespace durable::server
