// The Durable Task JS SDK's TaskHubGrpcClient against `durable serve`, driving the C++ example
// orchestrations the server runs: start, wait for start and completion, state with and
// without payloads, events, suspend / resume, terminate, purge by id and by filter, and an
// unknown instance read as undefined.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { OrchestrationStatus } = require("@dapr/durabletask-js/orchestration/enum/orchestration-status.enum");
const { PurgeInstanceCriteria } = require("@dapr/durabletask-js/orchestration/orchestration-purge-criteria");
const { quietSdk, serveForTests, reaches } = require("./serve");

quietSdk();

const env = serveForTests();

const approvalInput = (id) => ({ request_id: id, requester: "ada", amount: 10, timeout_ms: 600000,
                                 escalation_timeout_ms: 600000 });

// Polls the state until `status` (control messages take an episode to show), bounded.

test("fan-out / fan-in: word_count completes with its output", async () => {
  const id = await env.client.scheduleNewOrchestration("word_count", { documents: 6, words_per_document: 20, top: 3 });
  const done = await env.client.waitForOrchestrationCompletion(id, true, 60);
  assert.equal(done.runtimeStatus, OrchestrationStatus.COMPLETED);
  assert.equal(done.name, "word_count");
  const out = JSON.parse(done.serializedOutput);
  assert.ok(out && typeof out === "object");
  assert.ok(JSON.parse(done.serializedInput).documents === 6);
});

test("a caller-chosen id, WaitForInstanceStart, an event, custom status and payloads", async () => {
  const id = await env.client.scheduleNewOrchestration("approval", approvalInput("a-1"), "interop-approval-1");
  assert.equal(id, "interop-approval-1");
  const started = await env.client.waitForOrchestrationStart(id, false, 30);
  assert.notEqual(started.runtimeStatus, OrchestrationStatus.PENDING);
  assert.ok(await reaches(env.client, id, OrchestrationStatus.RUNNING));
  await env.client.raiseOrchestrationEvent(id, "approved", { by: "grace", comment: "fine" });
  const done = await env.client.waitForOrchestrationCompletion(id, true, 60);
  assert.equal(done.runtimeStatus, OrchestrationStatus.COMPLETED);
  const out = JSON.parse(done.serializedOutput);
  assert.equal(out.outcome, "approved");
  assert.equal(out.decided_by, "grace");
  assert.equal(JSON.parse(done.serializedCustomStatus).stage, "decided");

  const bare = await env.client.getOrchestrationState(id, false);
  assert.equal(bare.serializedInput, undefined);
  assert.equal(bare.serializedOutput, undefined);
});

test("starting an id in use is refused with ALREADY_EXISTS", async () => {
  await env.client.scheduleNewOrchestration("approval", approvalInput("dup"), "interop-dup");
  await assert.rejects(env.client.scheduleNewOrchestration("approval", approvalInput("dup"), "interop-dup"),
                       (e) => e.code === 6 /* ALREADY_EXISTS */ && /exists already/.test(e.details));
  await env.client.terminateOrchestration("interop-dup", "cleanup");
});

test("suspend and resume, then terminate with an output", async () => {
  const id = await env.client.scheduleNewOrchestration("approval", approvalInput("s-1"));
  assert.ok(await reaches(env.client, id, OrchestrationStatus.RUNNING));
  await env.client.suspendOrchestration(id);
  assert.ok(await reaches(env.client, id, OrchestrationStatus.SUSPENDED));
  await env.client.resumeOrchestration(id);
  assert.ok(await reaches(env.client, id, OrchestrationStatus.RUNNING));
  await env.client.terminateOrchestration(id, "no longer needed");
  const done = await env.client.waitForOrchestrationCompletion(id, true, 60);
  assert.equal(done.runtimeStatus, OrchestrationStatus.TERMINATED);
  assert.equal(done.serializedOutput, JSON.stringify("no longer needed"));
  // An event to a finished instance is refused.
  await assert.rejects(env.client.raiseOrchestrationEvent(id, "approved", {}), (e) => e.code === 9 /* FAILED_PRECONDITION */);
});

test("sub-orchestrations: order_pipeline with its payment child", async () => {
  const input = { order_id: "o-1", customer: "ada", items: [{ sku: "book", quantity: 1, price: 3.5 }] };
  const id = await env.client.scheduleNewOrchestration("order_pipeline", input);
  const done = await env.client.waitForOrchestrationCompletion(id, true, 60);
  assert.equal(done.runtimeStatus, OrchestrationStatus.COMPLETED, JSON.stringify(done.failureDetails));
});

test("purge by id (a running one is refused) and by filter; an unknown id reads as undefined", async () => {
  const running = await env.client.scheduleNewOrchestration("approval", approvalInput("p-run"));
  assert.ok(await reaches(env.client, running, OrchestrationStatus.RUNNING));
  await assert.rejects(env.client.purgeOrchestration(running), (e) => e.code === 9 /* FAILED_PRECONDITION */);

  const ids = [];
  for (let i = 0; i < 3; i++) {
    ids.push(await env.client.scheduleNewOrchestration("word_count", { documents: 2, words_per_document: 5 }));
  }
  for (const id of ids) await env.client.waitForOrchestrationCompletion(id, false, 60);
  const one = await env.client.purgeOrchestration(ids[0]);
  assert.equal(one.deletedInstanceCount, 1);
  assert.equal(await env.client.getOrchestrationState(ids[0]), undefined);

  const criteria = new PurgeInstanceCriteria();
  criteria.setRuntimeStatusList([OrchestrationStatus.COMPLETED]);
  const many = await env.client.purgeOrchestration(criteria);
  assert.ok(many.deletedInstanceCount >= 2);
  assert.equal(await env.client.getOrchestrationState(ids[1]), undefined);
  assert.equal(await env.client.getOrchestrationState(ids[2]), undefined);
  assert.ok(await env.client.getOrchestrationState(running));  // not finished: kept
  await env.client.terminateOrchestration(running, "done");
});
