// Faults with real processes around JS orchestrations run by `durable serve`: the JS worker
// killed mid-run and a new one started (the work resumes); two workers on one server (each
// instance's activities run once, each instance completes once); two `serve` processes on
// one file, one killed with SIGKILL (the other finishes its instances after the lease); and
// `serve` stopped with SIGTERM while streams are open (exit 0; a new serve on the file
// finishes the work).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawn, execFileSync } = require("node:child_process");
const { TaskHubGrpcClient } = require("@dapr/durabletask-js");
const { OrchestrationStatus } = require("@dapr/durabletask-js/orchestration/enum/orchestration-status.enum");
const { startServe, quietSdk } = require("./serve");

quietSdk();

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "durable-faults-"));
test.after(() => fs.rmSync(scratch, { recursive: true, force: true }));

// A worker process; resolves once it is connected.
async function startWorker(address, logFile, name) {
  const child = spawn(process.execPath, [path.join(__dirname, "fault_worker.js"), address, logFile, name],
                      { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${name} did not start within 30 s`)), 30000);
    child.stdout.on("data", (d) => {
      if (d.toString().includes("ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => reject(new Error(`worker ${name} exited early with ${code}`)));
  });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return { kill: (signal) => { child.kill(signal); return exited; } };
}

function executions(logFile) {
  if (!fs.existsSync(logFile)) return [];
  return fs.readFileSync(logFile, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

async function until(what, predicate, seconds = 60) {
  for (let i = 0; i < seconds * 20; i++) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function completions(db, id) {
  return execFileSync(process.env.DURABLE_BIN, ["--db", db, "history", id, "--json"], { encoding: "utf8" })
    .trim().split("\n").map((line) => JSON.parse(line).event).filter((e) => e.t === "ExecutionCompleted").length;
}

async function allComplete(client, ids, steps, seconds = 120) {
  for (const id of ids) {
    const done = await client.waitForOrchestrationCompletion(id, true, seconds);
    assert.ok(done, `instance ${id} finished`);
    assert.equal(done.runtimeStatus, OrchestrationStatus.COMPLETED, JSON.stringify(done.failureDetails));
    assert.deepEqual(JSON.parse(done.serializedOutput), [...Array(steps).keys()].map((i) => `s${i}`));
  }
}

test("the JS worker killed mid-run and a new one started: the work resumes", async () => {
  const serve = await startServe();
  const client = new TaskHubGrpcClient(serve.address);
  const log = path.join(scratch, "killed.log");
  const first = await startWorker(serve.address, log, "first");
  const ids = [];
  for (let i = 0; i < 4; i++) ids.push(await client.scheduleNewOrchestration("slow_sequence", { steps: 6, ms: 150 }));
  await until("some activities to run", () => executions(log).length >= 4);
  await first.kill("SIGKILL");
  const before = executions(log).length;
  assert.ok(before < 24, "killed before the work was done");
  const second = await startWorker(serve.address, log, "second");
  await allComplete(client, ids, 6);
  assert.ok(executions(log).some((e) => e.worker === "second"), "the new worker did the rest");
  for (const id of ids) assert.equal(completions(serve.db, id), 1);
  await second.kill("SIGTERM");
  await client.stop();
  assert.equal((await serve.stop()).code, 0);
});

test("two workers on one server: each activity runs once, each instance completes once", async () => {
  const serve = await startServe();
  const client = new TaskHubGrpcClient(serve.address);
  const log = path.join(scratch, "two.log");
  const a = await startWorker(serve.address, log, "a");
  const b = await startWorker(serve.address, log, "b");
  const ids = [];
  for (let i = 0; i < 16; i++) ids.push(await client.scheduleNewOrchestration("slow_sequence", { steps: 3, ms: 20 }));
  await allComplete(client, ids, 3);
  const seen = new Map();
  for (const e of executions(log)) {
    const key = `${e.instance}/${e.step}`;
    seen.set(key, (seen.get(key) || 0) + 1);
  }
  assert.equal(seen.size, 16 * 3);
  for (const [key, count] of seen) assert.equal(count, 1, `${key} ran ${count} times`);
  for (const id of ids) assert.equal(completions(serve.db, id), 1);
  await a.kill("SIGTERM");
  await b.kill("SIGTERM");
  await client.stop();
  assert.equal((await serve.stop()).code, 0);
});

test("two serve processes on one file, one killed with SIGKILL: the other finishes its instances", async () => {
  const one = await startServe();
  const two = await startServe([], { db: one.db });
  const log = path.join(scratch, "sigkill.log");
  const w1 = await startWorker(one.address, log, "w1");
  const w2 = await startWorker(two.address, log, "w2");
  const c1 = new TaskHubGrpcClient(one.address);
  const c2 = new TaskHubGrpcClient(two.address);
  const ids = [];
  // Started through the first server: created leased to it.
  for (let i = 0; i < 4; i++) ids.push(await c1.scheduleNewOrchestration("slow_sequence", { steps: 8, ms: 150 }));
  await until("some activities to run", () => executions(log).length >= 4);
  await one.kill("SIGKILL");
  await c1.stop();
  await allComplete(c2, ids, 8);
  for (const id of ids) assert.equal(completions(two.db, id), 1);
  await w1.kill("SIGKILL");
  await w2.kill("SIGTERM");
  await c2.stop();
  assert.equal((await two.stop()).code, 0);
  one.cleanup();
});

test("serve stopped with SIGTERM while streams are open: exits 0, a new serve finishes the work", async () => {
  const first = await startServe();
  const log = path.join(scratch, "sigterm.log");
  const w = await startWorker(first.address, log, "w");
  const c = new TaskHubGrpcClient(first.address);
  const ids = [];
  for (let i = 0; i < 4; i++) ids.push(await c.scheduleNewOrchestration("slow_sequence", { steps: 8, ms: 150 }));
  await until("some activities to run", () => executions(log).length >= 4);
  const stopped = await first.kill("SIGTERM");
  assert.equal(stopped.code, 0, "a graceful stop with streams open");
  await c.stop();
  await w.kill("SIGKILL");
  const second = await startServe([], { db: first.db });
  const w2 = await startWorker(second.address, log, "w2");
  const c2 = new TaskHubGrpcClient(second.address);
  await allComplete(c2, ids, 8);
  for (const id of ids) assert.equal(completions(second.db, id), 1);
  await w2.kill("SIGTERM");
  await c2.stop();
  assert.equal((await second.stop()).code, 0);
  first.cleanup();
});
