// The wire contract: every message, field, enum value and method of our
// orchestrator_service.proto equals the SDK's copy (from the @dapr/durabletask-js npm
// package in tests/interop, which `npm ci` installs), compared through protobuf descriptors.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <string>
#include <vector>

#include "orchestrator_service.pb.h"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace pb = google::protobuf;

namespace {

// The SDK's proto compiled by protoc into a pool of its own.
struct SdkProto {
    pb::DescriptorPool pool;
    const pb::FileDescriptor* file = nullptr;
};

void load_sdk(SdkProto& sdk) {
    std::filesystem::path proto(DURABLE_SDK_PROTO);
    REQUIRE_MESSAGE(std::filesystem::exists(proto),
                    "the SDK's proto is missing: run `npm ci` in tests/interop (" << proto.string() << ")");
    durable::test::TempDir dir;
    auto out = dir.file("sdk.pb");
    durable::test::Process protoc(DURABLE_PROTOC, {"-I", proto.parent_path().string(), "--include_imports",
                                                   "--descriptor_set_out=" + out, proto.filename().string()});
    auto done = durable::test::read_to_end(protoc, std::chrono::seconds(60));
    REQUIRE(done.code == 0);
    pb::FileDescriptorSet set;
    std::ifstream in(out, std::ios::binary);
    REQUIRE(set.ParseFromIstream(&in));
    for (const auto& f : set.file()) REQUIRE(sdk.pool.BuildFile(f) != nullptr);
    sdk.file = sdk.pool.FindFileByName(proto.filename().string());
    REQUIRE(sdk.file != nullptr);
}

std::string oneof_of(const pb::FieldDescriptor* f) {
    return f->real_containing_oneof() ? f->real_containing_oneof()->name() : std::string();
}

// Everything in `ours` that differs from the same-named thing in `theirs`, one line each.
std::vector<std::string> differences(const pb::FileDescriptor* ours, const pb::DescriptorPool& theirs) {
    std::vector<std::string> d;
    auto differ = [&d](const std::string& what, const std::string& a, const std::string& b) {
        if (a != b) d.push_back(what + ": ours " + a + ", SDK's " + b);
    };
    for (int i = 0; i < ours->message_type_count(); ++i) {
        const pb::Descriptor* m = ours->message_type(i);
        const pb::Descriptor* t = theirs.FindMessageTypeByName(m->full_name());
        if (!t) {
            d.push_back("message " + m->full_name() + " is not in the SDK's proto");
            continue;
        }
        for (int j = 0; j < m->field_count(); ++j) {
            const pb::FieldDescriptor* f = m->field(j);
            const pb::FieldDescriptor* tf = t->FindFieldByName(f->name());
            if (!tf) {
                d.push_back("field " + f->full_name() + " is not in the SDK's proto");
                continue;
            }
            differ(f->full_name() + " number", std::to_string(f->number()), std::to_string(tf->number()));
            differ(f->full_name() + " type", f->type_name(), tf->type_name());
            differ(f->full_name() + " label", std::to_string(f->label()), std::to_string(tf->label()));
            differ(f->full_name() + " json name", f->json_name(), tf->json_name());
            differ(f->full_name() + " message type", f->message_type() ? f->message_type()->full_name() : "",
                   tf->message_type() ? tf->message_type()->full_name() : "");
            differ(f->full_name() + " enum type", f->enum_type() ? f->enum_type()->full_name() : "",
                   tf->enum_type() ? tf->enum_type()->full_name() : "");
            differ(f->full_name() + " oneof", oneof_of(f), oneof_of(tf));
        }
    }
    for (int i = 0; i < ours->enum_type_count(); ++i) {
        const pb::EnumDescriptor* e = ours->enum_type(i);
        const pb::EnumDescriptor* t = theirs.FindEnumTypeByName(e->full_name());
        if (!t) {
            d.push_back("enum " + e->full_name() + " is not in the SDK's proto");
            continue;
        }
        differ(e->full_name() + " value count", std::to_string(e->value_count()), std::to_string(t->value_count()));
        for (int v = 0; v < e->value_count(); ++v) {
            const pb::EnumValueDescriptor* tv = t->FindValueByName(e->value(v)->name());
            if (!tv) {
                d.push_back("enum value " + e->value(v)->full_name() + " is not in the SDK's proto");
                continue;
            }
            differ(e->value(v)->full_name(), std::to_string(e->value(v)->number()), std::to_string(tv->number()));
        }
    }
    for (int i = 0; i < ours->service_count(); ++i) {
        const pb::ServiceDescriptor* s = ours->service(i);
        const pb::ServiceDescriptor* ts = theirs.FindServiceByName(s->full_name());
        if (!ts) {
            d.push_back("service " + s->full_name() + " is not in the SDK's proto");
            continue;
        }
        for (int j = 0; j < s->method_count(); ++j) {
            const pb::MethodDescriptor* m = s->method(j);
            const pb::MethodDescriptor* tm = ts->FindMethodByName(m->name());
            if (!tm) {
                d.push_back("method " + m->full_name() + " is not in the SDK's proto");
                continue;
            }
            differ(m->full_name() + " input", m->input_type()->full_name(), tm->input_type()->full_name());
            differ(m->full_name() + " output", m->output_type()->full_name(), tm->output_type()->full_name());
            differ(m->full_name() + " streaming",
                   std::to_string(m->client_streaming()) + std::to_string(m->server_streaming()),
                   std::to_string(tm->client_streaming()) + std::to_string(tm->server_streaming()));
        }
    }
    return d;
}

}  // namespace

TEST_CASE("our proto is wire compatible with the SDK's: messages, fields, enums, service") {
    SdkProto sdk;
    load_sdk(sdk);
    const pb::FileDescriptor* ours = ::OrchestrationInstance::descriptor()->file();
    CHECK(ours->package() == sdk.file->package());  // both none: method paths are "/TaskHubSidecarService/..."
    auto d = differences(ours, sdk.pool);
    for (const auto& line : d) MESSAGE(line);
    CHECK(d.empty());

    // The comparison covered the whole protocol we serve.
    int fields = 0;
    for (int i = 0; i < ours->message_type_count(); ++i) fields += ours->message_type(i)->field_count();
    CHECK(ours->message_type_count() >= 55);
    CHECK(fields >= 170);
    REQUIRE(ours->service_count() == 1);
    CHECK(ours->service(0)->full_name() == "TaskHubSidecarService");
    // Every RPC the JS SDK calls is served.
    for (const char* name : {"Hello", "StartInstance", "GetInstance", "WaitForInstanceStart",
                             "WaitForInstanceCompletion", "RaiseEvent", "TerminateInstance", "SuspendInstance",
                             "ResumeInstance", "PurgeInstances", "GetWorkItems", "CompleteActivityTask",
                             "CompleteOrchestratorTask"}) {
        CAPTURE(name);
        CHECK(ours->service(0)->FindMethodByName(name) != nullptr);
    }
}

TEST_CASE("the wire comparison catches a renumbered field and a renamed message") {
    SdkProto sdk;
    load_sdk(sdk);
    pb::FileDescriptorProto fp;
    ::OrchestrationInstance::descriptor()->file()->CopyTo(&fp);
    for (auto& m : *fp.mutable_message_type()) {
        if (m.name() == "ActivityRequest") {
            for (auto& f : *m.mutable_field()) {
                if (f.name() == "taskId") f.set_number(f.number() + 10);
            }
        }
        if (m.name() == "GenericEvent") m.set_name("GenericEvents");
    }
    for (auto& f : *fp.mutable_message_type()) {
        for (auto& field : *f.mutable_field()) {
            if (field.type_name() == ".GenericEvent") field.set_type_name(".GenericEvents");
        }
    }
    // Built in a pool of its own (its names would clash with the generated pool's), with the
    // well-known types it imports.
    pb::DescriptorPool alone;
    for (const char* dep : {"google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto",
                            "google/protobuf/empty.proto"}) {
        pb::FileDescriptorProto d;
        pb::DescriptorPool::generated_pool()->FindFileByName(dep)->CopyTo(&d);
        REQUIRE(alone.BuildFile(d) != nullptr);
    }
    const pb::FileDescriptor* changed = alone.BuildFile(fp);
    REQUIRE(changed != nullptr);
    auto d = differences(changed, sdk.pool);
    auto mentions = [&d](const std::string& text) {
        for (const auto& line : d) {
            if (line.find(text) != std::string::npos) return true;
        }
        return false;
    };
    CHECK(mentions("ActivityRequest.taskId number: ours 15, SDK's 5"));
    CHECK(mentions("message GenericEvents is not in the SDK's proto"));
    CHECK(mentions("HistoryEvent.genericEvent message type"));
}
