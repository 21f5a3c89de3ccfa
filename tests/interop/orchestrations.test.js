// Orchestrations written in JS with the Durable Task JS SDK, run by `durable serve`: the
// server keeps their history, leases and timers and sends each step to the SDK's
// TaskHubGrpcWorker, which replays and answers with actions. Activity sequence, fan-out /
// fan-in, sub-orchestrations (JS and C++), timers, external events with and without a
// timeout, terminate, suspend / resume, continue-as-new, purge by id and by filter, custom
// status, and an activity failure caught by the orchestrator or left uncaught (failure details).
// Names start with "js": the server's own C++ orchestrations (approval, ...) take their names.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { TaskHubGrpcWorker } = require("@dapr/durabletask-js");
const { whenAll, whenAny } = require("@dapr/durabletask-js/task");
const { OrchestrationStatus } = require("@dapr/durabletask-js/orchestration/enum/orchestration-status.enum");
const { PurgeInstanceCriteria } = require("@dapr/durabletask-js/orchestration/orchestration-purge-criteria");
const { quietSdk, serveForTests, reaches } = require("./serve");

quietSdk();

let worker;
const activityCalls = [];

const jsHello = async (_ctx, name) => {
  activityCalls.push(name);
  return `Hello, ${name}!`;
};
const jsDouble = async (_ctx, n) => n * 2;
const jsBoom = async (_ctx, what) => {
  throw new RangeError(`cannot ${what}`);
};

const jsSequence = async function* (ctx, names) {
  const out = [];
  for (const n of names) out.push(yield ctx.callActivity(jsHello, n));
  return out;
};

const jsFanOut = async function* (ctx, n) {
  const tasks = [];
  for (let i = 1; i <= n; i++) tasks.push(ctx.callActivity(jsDouble, i));
  const results = yield whenAll(tasks);
  return results.reduce((a, b) => a + b, 0);
};

const jsParent = async function* (ctx, who) {
  const js = yield ctx.callSubOrchestrator(jsSequence, [who, `${who} junior`]);
  // A C++ orchestration of the server, called from JS.
  const cpp = yield ctx.callSubOrchestrator("activity_sequence", { activities: [{ name: "jsHello", input: "C++" }] });
  return { js, cpp };
};

const jsTimer = async function* (ctx, seconds) {
  const before = ctx.currentUtcDateTime.getTime();
  yield ctx.createTimer(seconds);
  return ctx.currentUtcDateTime.getTime() - before >= seconds * 1000 - 5;
};

const jsApproval = async function* (ctx, timeoutSeconds) {
  ctx.setCustomStatus("waiting");
  const approved = ctx.waitForExternalEvent("approve");
  if (timeoutSeconds == null) {  // a null input arrives as no input
    const by = yield approved;
    return `approved by ${by}`;
  }
  const winner = yield whenAny([approved, ctx.createTimer(timeoutSeconds)]);
  if (winner === approved) return `approved by ${approved.getResult()}`;
  return "timed out";
};

const jsCounter = async function* (ctx, n) {
  if (n < 4) {
    ctx.continueAsNew(n + 1, false);
    return;
  }
  const last = yield ctx.callActivity(jsDouble, n);
  return last;
};

const jsRisky = async function* (ctx, mode) {
  try {
    yield ctx.callActivity(jsBoom, "divide by zero");
  } catch (e) {
    if (mode === "catch") return `caught: ${e.message}`;
    throw e;
  }
  return "unreachable";
};

const env = serveForTests({
  async setup({ serve }) {
    worker = new TaskHubGrpcWorker(serve.address);
    for (const o of [jsSequence, jsFanOut, jsParent, jsTimer, jsApproval, jsCounter, jsRisky]) worker.addOrchestrator(o);
    for (const a of [jsHello, jsDouble, jsBoom]) worker.addActivity(a);
    await worker.start();
  },
  teardown: () => worker.stop(),
});

async function completed(id, seconds = 60) {
  const done = await env.client.waitForOrchestrationCompletion(id, true, seconds);
  assert.ok(done, `instance ${id} finished`);
  assert.equal(done.runtimeStatus, OrchestrationStatus.COMPLETED, JSON.stringify(done.failureDetails));
  return JSON.parse(done.serializedOutput);
}

test("a JS activity sequence runs in order", async () => {
  activityCalls.length = 0;
  const id = await env.client.scheduleNewOrchestration(jsSequence, ["Tokyo", "Lima", "Oslo"]);
  assert.deepEqual(await completed(id), ["Hello, Tokyo!", "Hello, Lima!", "Hello, Oslo!"]);
  assert.deepEqual(activityCalls, ["Tokyo", "Lima", "Oslo"]);
});

test("fan-out / fan-in over 20 activities", async () => {
  assert.equal(await completed(await env.client.scheduleNewOrchestration(jsFanOut, 20)), 420);
});

test("sub-orchestrations: a JS child and a C++ child", async () => {
  const out = await completed(await env.client.scheduleNewOrchestration(jsParent, "Ada"));
  assert.deepEqual(out.js, ["Hello, Ada!", "Hello, Ada junior!"]);
  assert.deepEqual(out.cpp, ["Hello, C++!"]);
});

test("a durable timer fires, and the replay-safe clock moved past it", async () => {
  assert.equal(await completed(await env.client.scheduleNewOrchestration(jsTimer, 1)), true);
});

test("external events: without a timeout, with one that the event beats, and one that expires", async () => {
  const plain = await env.client.scheduleNewOrchestration(jsApproval, null);
  const beaten = await env.client.scheduleNewOrchestration(jsApproval, 600);
  const expired = await env.client.scheduleNewOrchestration(jsApproval, 1);
  const waiting = await reaches(env.client, plain, OrchestrationStatus.RUNNING);
  assert.ok(waiting);
  assert.ok(await reaches(env.client, beaten, OrchestrationStatus.RUNNING));
  await env.client.raiseOrchestrationEvent(plain, "approve", "grace");
  await env.client.raiseOrchestrationEvent(beaten, "approve", "linus");
  assert.equal(await completed(plain), "approved by grace");
  assert.equal(await completed(beaten), "approved by linus");
  assert.equal(await completed(expired), "timed out");
  const state = await env.client.getOrchestrationState(plain, true);
  assert.equal(state.serializedCustomStatus, "waiting");
});

test("suspend holds an event until resume, terminate ends a waiting instance", async () => {
  const id = await env.client.scheduleNewOrchestration(jsApproval, null);
  assert.ok(await reaches(env.client, id, OrchestrationStatus.RUNNING));
  await env.client.suspendOrchestration(id);
  assert.ok(await reaches(env.client, id, OrchestrationStatus.SUSPENDED));
  await env.client.raiseOrchestrationEvent(id, "approve", "held");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await env.client.getOrchestrationState(id, false)).runtimeStatus, OrchestrationStatus.SUSPENDED);
  await env.client.resumeOrchestration(id);
  assert.equal(await completed(id), "approved by held");

  const doomed = await env.client.scheduleNewOrchestration(jsApproval, null);
  assert.ok(await reaches(env.client, doomed, OrchestrationStatus.RUNNING));
  await env.client.terminateOrchestration(doomed, "no longer needed");
  const t = await env.client.waitForOrchestrationCompletion(doomed, true, 60);
  assert.equal(t.runtimeStatus, OrchestrationStatus.TERMINATED);
  assert.equal(JSON.parse(t.serializedOutput), "no longer needed");
});

test("continue-as-new restarts with the new input until it finishes", async () => {
  const id = await env.client.scheduleNewOrchestration(jsCounter, 0);
  assert.equal(await completed(id), 8);
  const state = await env.client.getOrchestrationState(id, true);
  assert.equal(JSON.parse(state.serializedInput), 4);
});

test("an activity failure: caught by the orchestrator, or failing it with failure details", async () => {
  // The SDK's message names the instance and the task: "<id>: Activity task #1 failed: ...".
  assert.match(await completed(await env.client.scheduleNewOrchestration(jsRisky, "catch")),
               /^caught: .*cannot divide by zero/);
  const id = await env.client.scheduleNewOrchestration(jsRisky, "throw");
  const done = await env.client.waitForOrchestrationCompletion(id, true, 60);
  assert.equal(done.runtimeStatus, OrchestrationStatus.FAILED);
  assert.ok(done.failureDetails, "failure details are reported");
  assert.match(done.failureDetails.message, /cannot divide by zero/);
});

test("purge of JS orchestrations by id and by filter", async () => {
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(await env.client.scheduleNewOrchestration(jsSequence, [`p${i}`]));
  for (const id of ids) await completed(id);
  const one = await env.client.purgeOrchestration(ids[0]);
  assert.equal(one.deletedInstanceCount, 1);
  assert.equal(await env.client.getOrchestrationState(ids[0]), undefined);
  const criteria = new PurgeInstanceCriteria();
  criteria.setRuntimeStatusList([OrchestrationStatus.COMPLETED]);
  const many = await env.client.purgeOrchestration(criteria);
  assert.ok(many.deletedInstanceCount >= 2);
  assert.equal(await env.client.getOrchestrationState(ids[1]), undefined);
  assert.equal(await env.client.getOrchestrationState(ids[2]), undefined);
});
