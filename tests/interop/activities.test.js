// The Durable Task JS SDK's TaskHubGrpcWorker as the activity worker of `durable serve`: a C++
// orchestration (activity_sequence) calls activities that only the JS worker has, through the
// GetWorkItems stream and CompleteActivityTask. Results come back in order; a failure reaches
// the instance with the JS error's type and message; a worker stopped mid-activity and a new
// one started finishes the work.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { TaskHubGrpcWorker } = require("@dapr/durabletask-js");
const { OrchestrationStatus } = require("@dapr/durabletask-js/orchestration/enum/orchestration-status.enum");
const { execFileSync } = require("node:child_process");
const { quietSdk, serveForTests, reaches } = require("./serve");

quietSdk();

const env = serveForTests();

function newWorker(activities) {
  const worker = new TaskHubGrpcWorker(env.serve.address);
  for (const [name, fn] of Object.entries(activities)) worker.addNamedActivity(name, fn);
  return worker;
}

const sequence = (...steps) => ({ activities: steps.map(([name, input]) => ({ name, input })) });

test("a C++ orchestration's activities run in the JS worker, in order", async () => {
  const calls = [];
  const worker = newWorker({
    greet: async (_ctx, city) => {
      calls.push(city);
      return `Hello, ${city}!`;
    },
  });
  await worker.start();
  try {
    const id = await env.client.scheduleNewOrchestration("activity_sequence",
                                                     sequence(["greet", "Tokyo"], ["greet", "Seattle"], ["greet", "London"]));
    const done = await env.client.waitForOrchestrationCompletion(id, true, 60);
    assert.equal(done.runtimeStatus, OrchestrationStatus.COMPLETED, JSON.stringify(done.failureDetails));
    assert.deepEqual(JSON.parse(done.serializedOutput), ["Hello, Tokyo!", "Hello, Seattle!", "Hello, London!"]);
    assert.deepEqual(calls, ["Tokyo", "Seattle", "London"]);
  } finally {
    await worker.stop();
  }
});

test("an activity failure in the worker fails the instance with the JS error's type and message", async () => {
  const worker = newWorker({
    boom: async () => {
      throw new TypeError("the payment API said no");
    },
  });
  await worker.start();
  try {
    const id = await env.client.scheduleNewOrchestration("activity_sequence", sequence(["boom", 1]));
    const done = await env.client.waitForOrchestrationCompletion(id, true, 60);
    assert.equal(done.runtimeStatus, OrchestrationStatus.FAILED);
    assert.ok(done.failureDetails, "failure details are reported");
    // Uncaught in the orchestrator: the instance fails with TaskFailed and the activity's message;
    // the activity's own failure, in history, keeps the JS error's type.
    assert.equal(done.failureDetails.errorType, "TaskFailed");
    assert.match(done.failureDetails.message, /the payment API said no/);
    const history = execFileSync(process.env.DURABLE_BIN, ["--db", env.serve.db, "history", id, "--json"], { encoding: "utf8" })
      .trim().split("\n").map((line) => JSON.parse(line).event);
    const failed = history.find((e) => e.t === "TaskFailed");
    assert.ok(failed, "the history has the activity's failure");
    assert.equal(failed.error.type, "TypeError");
    assert.equal(failed.error.message, "the payment API said no");
    assert.match(failed.error.details ?? "", /TypeError/);  // the JS stack trace
  } finally {
    await worker.stop();
  }
});

test("a worker stopped mid-activity: its item goes to a new worker, and the instance completes", async () => {
  let release;
  const stuck = new Promise((r) => (release = r));
  let firstStarted;
  const started = new Promise((r) => (firstStarted = r));
  const first = newWorker({
    slow: async () => {
      firstStarted();
      await stuck;  // never answers before its worker stops
      return "from the first worker";
    },
  });
  await first.start();
  const id = await env.client.scheduleNewOrchestration("activity_sequence", sequence(["slow", 0]));
  await started;
  await first.stop();  // cancels the stream: the server gives the item back at once
  release();

  const second = newWorker({ slow: async () => "from the second worker" });
  await second.start();
  try {
    const done = await env.client.waitForOrchestrationCompletion(id, true, 60);
    assert.equal(done.runtimeStatus, OrchestrationStatus.COMPLETED);
    assert.deepEqual(JSON.parse(done.serializedOutput), ["from the second worker"]);
  } finally {
    await second.stop();
  }
});
