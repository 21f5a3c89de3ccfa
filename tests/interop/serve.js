// Starts `durable serve` on a free loopback port with a fresh database, for the interop tests.
// The binary comes from DURABLE_BIN (the ctest test sets it).
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

// `options.db`: serve that database (another serve's, for several on one file) and leave it
// in place at stop.
async function startServe(extraArgs = [], options = {}) {
  const bin = process.env.DURABLE_BIN;
  if (!bin) throw new Error("DURABLE_BIN is not set: the path of the `durable` binary");
  const dir = options.db ? null : fs.mkdtempSync(path.join(os.tmpdir(), "durable-interop-"));
  const db = options.db || path.join(dir, "interop.db");
  const child = spawn(bin, ["--db", db, "serve", "--listen", "127.0.0.1:0", "--lease", "2s", "--log-level", "warn",
                            ...extraArgs], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("durable serve did not start within 30 s")), 30000);
    child.stdout.on("data", (chunk) => {
      out += chunk.toString();
      const m = out.match(/serving \S+ on port (\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on("exit", (code) => reject(new Error(`durable serve exited early with ${code}`)));
  });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return {
    address: `127.0.0.1:${port}`,
    db,
    pid: child.pid,
    // SIGTERM and wait for the exit: the code (0 for a graceful stop).
    async stop() {
      child.kill("SIGTERM");
      const r = await exited;
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      return r;
    },
    // Sends `signal` and waits for the exit (the database stays).
    async kill(signal) {
      child.kill(signal);
      return exited;
    },
    // Removes the database's folder (after a kill).
    cleanup() {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// The SDK logs every call on the console; a test's or a tool's own output is what matters.
// Returns the console.log it replaced, for a tool that prints its own results.
function quietSdk() {
  const log = console.log;
  console.log = () => {};
  console.info = () => {};
  console.error = () => {};
  return log;
}

// For a test file: one `durable serve` and a TaskHubGrpcClient on it, started before the file's
// tests and stopped after them (the stop must be graceful: exit 0). `setup(env)` runs once both
// are up (to start a worker, say) and `teardown(env)` before they stop. Returns `env`, whose
// `serve` and `client` are set from then on.
function serveForTests({ setup, teardown } = {}) {
  const test = require("node:test");
  const assert = require("node:assert/strict");
  const { TaskHubGrpcClient } = require("@dapr/durabletask-js");
  const env = {};
  test.before(async () => {
    env.serve = await startServe();
    env.client = new TaskHubGrpcClient(env.serve.address);
    if (setup) await setup(env);
  });
  test.after(async () => {
    if (teardown) await teardown(env);
    await env.client.stop();
    const r = await env.serve.stop();
    assert.equal(r.code, 0, "durable serve stops gracefully on SIGTERM");
  });
  return env;
}

// Reads the instance's state until its status is `status` (a control message takes an episode
// to show), at most 400 times 25 ms apart: the state, else undefined.
async function reaches(client, id, status) {
  for (let i = 0; i < 400; i++) {
    const s = await client.getOrchestrationState(id, false);
    if (s && s.runtimeStatus === status) return s;
    await new Promise((r) => setTimeout(r, 25));
  }
  return undefined;
}

module.exports = { startServe, quietSdk, serveForTests, reaches };
