// The Durable Task JS SDK's TaskHubGrpcClient against `durable serve`, driving the C++ example
// orchestrations the server runs: start, wait for start and completion, state with and
// without payloads, events, suspend / resume, terminate, purge by id and by filter, and an
// unknown instance read as undefined.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { TaskHubGrpcClient } = require("@dapr/durabletask-js");
const { OrchestrationStatus } = require("@dapr/durabletask-js/orchestration/enum/orchestration-status.enum");
const { PurgeInstanceCriteria } = require("@dapr/durabletask-js/orchestration/orchestration-purge-criteria");
const { startServe } = require("./serve");

// The SDK logs every call on the console; the test's own output is what matters.
console.log = () => {};
console.info = () => {};

let serve;
let client;

test.before(async () => {
  serve = await startServe();
  client = new TaskHubGrpcClient(serve.address);
});

test.after(async () => {
  await client.stop();
  const r = await serve.stop();
  assert.equal(r.code, 0, "durable serve stops gracefully on SIGTERM");
});

const approvalInput = (id) => ({ request_id: id, requester: "ada", amount: 10, timeout_ms: 600000,
                                 escalation_timeout_ms: 600000 });

// Polls the state until `status` (control messages take an episode to show), bounded.
async function reaches(id, status) {
  for (let i = 0; i < 400; i++) {
    const s = await client.getOrchestrationState(id, false);
    if (s && s.runtimeStatus === status) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

test("fan-out / fan-in: word_count completes with its output", async () => {
  const id = await client.scheduleNewOrchestration("word_count", { documents: 6, words_per_document: 20, top: 3 });
  const done = await client.waitForOrchestrationCompletion(id, true, 60);
  assert.equal(done.runtimeStatus, OrchestrationStatus.COMPLETED);
  assert.equal(done.name, "word_count");
  const out = JSON.parse(done.serializedOutput);
  assert.ok(out && typeof out === "object");
  assert.ok(JSON.parse(done.serializedInput).documents === 6);
});

test("a caller-chosen id, WaitForInstanceStart, an event, custom status and payloads", async () => {
  const id = await client.scheduleNewOrchestration("approval", approvalInput("a-1"), "interop-approval-1");
  assert.equal(id, "interop-approval-1");
  const started = await client.waitForOrchestrationStart(id, false, 30);
  assert.notEqual(started.runtimeStatus, OrchestrationStatus.PENDING);
  assert.ok(await reaches(id, OrchestrationStatus.RUNNING));
  await client.raiseOrchestrationEvent(id, "approved", { by: "grace", comment: "fine" });
  const done = await client.waitForOrchestrationCompletion(id, true, 60);
  assert.equal(done.runtimeStatus, OrchestrationStatus.COMPLETED);
  const out = JSON.parse(done.serializedOutput);
  assert.equal(out.outcome, "approved");
  assert.equal(out.decided_by, "grace");
  assert.equal(JSON.parse(done.serializedCustomStatus).stage, "decided");

  const bare = await client.getOrchestrationState(id, false);
  assert.equal(bare.serializedInput, undefined);
  assert.equal(bare.serializedOutput, undefined);
});

test("starting an id in use is refused with ALREADY_EXISTS", async () => {
  await client.scheduleNewOrchestration("approval", approvalInput("dup"), "interop-dup");
  await assert.rejects(client.scheduleNewOrchestration("approval", approvalInput("dup"), "interop-dup"),
                       (e) => e.code === 6 /* ALREADY_EXISTS */ && /exists already/.test(e.details));
  await client.terminateOrchestration("interop-dup", "cleanup");
});

test("suspend and resume, then terminate with an output", async () => {
  const id = await client.scheduleNewOrchestration("approval", approvalInput("s-1"));
  assert.ok(await reaches(id, OrchestrationStatus.RUNNING));
  await client.suspendOrchestration(id);
  assert.ok(await reaches(id, OrchestrationStatus.SUSPENDED));
  await client.resumeOrchestration(id);
  assert.ok(await reaches(id, OrchestrationStatus.RUNNING));
  await client.terminateOrchestration(id, "no longer needed");
  const done = await client.waitForOrchestrationCompletion(id, true, 60);
  assert.equal(done.runtimeStatus, OrchestrationStatus.TERMINATED);
  assert.equal(done.serializedOutput, JSON.stringify("no longer needed"));
  // An event to a finished instance is refused.
  await assert.rejects(client.raiseOrchestrationEvent(id, "approved", {}), (e) => e.code === 9 /* FAILED_PRECONDITION */);
});

test("sub-orchestrations: order_pipeline with its payment child", async () => {
  const input = { order_id: "o-1", customer: "ada", items: [{ sku: "book", quantity: 1, price: 3.5 }] };
  const id = await client.scheduleNewOrchestration("order_pipeline", input);
  const done = await client.waitForOrchestrationCompletion(id, true, 60);
  assert.equal(done.runtimeStatus, OrchestrationStatus.COMPLETED, JSON.stringify(done.failureDetails));
});

test("purge by id (a running one is refused) and by filter; an unknown id reads as undefined", async () => {
  const running = await client.scheduleNewOrchestration("approval", approvalInput("p-run"));
  assert.ok(await reaches(running, OrchestrationStatus.RUNNING));
  await assert.rejects(client.purgeOrchestration(running), (e) => e.code === 9 /* FAILED_PRECONDITION */);

  const ids = [];
  for (let i = 0; i < 3; i++) {
    ids.push(await client.scheduleNewOrchestration("word_count", { documents: 2, words_per_document: 5 }));
  }
  for (const id of ids) await client.waitForOrchestrationCompletion(id, false, 60);
  const one = await client.purgeOrchestration(ids[0]);
  assert.equal(one.deletedInstanceCount, 1);
  assert.equal(await client.getOrchestrationState(ids[0]), undefined);

  const criteria = new PurgeInstanceCriteria();
  criteria.setRuntimeStatusList([OrchestrationStatus.COMPLETED]);
  const many = await client.purgeOrchestration(criteria);
  assert.ok(many.deletedInstanceCount >= 2);
  assert.equal(await client.getOrchestrationState(ids[1]), undefined);
  assert.equal(await client.getOrchestrationState(ids[2]), undefined);
  assert.ok(await client.getOrchestrationState(running));  // not finished: kept
  await client.terminateOrchestration(running, "done");
});
