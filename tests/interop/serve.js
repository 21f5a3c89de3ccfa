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

module.exports = { startServe };
