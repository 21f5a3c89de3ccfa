// A Durable Task JS worker in a process of its own, for the fault tests (faults.test.js):
//   node fault_worker.js ADDRESS LOG_FILE NAME
// Runs "slow_sequence" (input {steps, ms}: `steps` activities one after the other, each
// sleeping `ms` and returning "s" and its step number). Every activity execution is appended to
// LOG_FILE as a JSON line {worker, kind, instance, step}, so a test can count executions
// across processes.
"use strict";
const fs = require("node:fs");
const { TaskHubGrpcWorker } = require("@dapr/durabletask-js");
const { quietSdk } = require("./serve");

const [address, logFile, name] = process.argv.slice(2);
quietSdk();

const record = (kind, instance, step) =>
  fs.appendFileSync(logFile, `${JSON.stringify({ worker: name, kind, instance, step })}\n`);

const work = async (ctx, input) => {
  await new Promise((r) => setTimeout(r, input.ms));
  record("activity", ctx.orchestrationId, input.step);
  return `s${input.step}`;  // not 0: the SDK sends a falsy result as no result
};

const slow_sequence = async function* (ctx, input) {
  const out = [];
  for (let i = 0; i < input.steps; i++) out.push(yield ctx.callActivity(work, { step: i, ms: input.ms }));
  return out;
};

async function main() {
  const worker = new TaskHubGrpcWorker(address);
  worker.addOrchestrator(slow_sequence);
  worker.addActivity(work);
  await worker.start();
  process.stdout.write("ready\n");
  process.on("SIGTERM", async () => {
    await worker.stop();
    process.exit(0);
  });
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
