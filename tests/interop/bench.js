// The JS-SDK figure for durable-bench's `sidecar` workload (bench/README.md): W1's shape —
// N orchestrations of 5 sequential activities, C in flight — written with the Durable Task
// JS SDK and run by `durable serve` (fsync'd). Prints one JSON line.
//
//   DURABLE_BIN=build/cli/durable node tests/interop/bench.js [instances=2000] [concurrency=50]
"use strict";
const { TaskHubGrpcClient, TaskHubGrpcWorker } = require("@dapr/durabletask-js");
const { OrchestrationStatus } = require("@dapr/durabletask-js/orchestration/enum/orchestration-status.enum");
const fs = require("node:fs");
const os = require("node:os");
const { startServe, quietSdk } = require("./serve");

const log = quietSdk();

// Objects, not bare numbers: the SDK sends a falsy input or result (0) as none.
const step = async (_ctx, s) => ({ v: s.v + 1 });
const sequence = async function* (ctx, steps) {
  let s = { v: 0 };
  for (let i = 0; i < steps; i++) s = yield ctx.callActivity(step, s);
  return s;
};

async function main() {
  const loadAtStart = os.loadavg()[0];
  const n = Number(process.argv[2] || 2000);
  const c = Number(process.argv[3] || 50);
  const serve = await startServe(["--max-outstanding", "256", "--threads", "64"]);
  const worker = new TaskHubGrpcWorker(serve.address);
  worker.addOrchestrator(sequence);
  worker.addActivity(step);
  await worker.start();
  const client = new TaskHubGrpcClient(serve.address);
  let next = 0;
  let failed = 0;
  const latencies = [];
  // CPU seconds of the serve process (Linux /proc; null elsewhere) and of this node process.
  const serveCpu = () => {
    try {
      const f = fs.readFileSync(`/proc/${serve.pid}/stat`, "utf8").split(") ")[1].split(" ");
      return (Number(f[11]) + Number(f[12])) / 100;  // utime + stime, in clock ticks (USER_HZ = 100)
    } catch {
      return null;
    }
  };
  const serve0 = serveCpu();
  const node0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  async function lane() {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const t = process.hrtime.bigint();
      const id = await client.scheduleNewOrchestration(sequence, 5);
      const done = await client.waitForOrchestrationCompletion(id, true, 600);
      if (!done || done.runtimeStatus !== OrchestrationStatus.COMPLETED || JSON.parse(done.serializedOutput).v !== 5) {
        failed++;
        if (failed === 1) process.stderr.write(`first failure: ${JSON.stringify(done)}\n`);
      }
      latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }
  await Promise.all(Array.from({ length: c }, lane));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const nodeUsage = process.cpuUsage(node0);
  const nodeCpu = (nodeUsage.user + nodeUsage.system) / 1e6;
  const serve1 = serveCpu();
  const serveCpuSeconds = serve0 === null || serve1 === null ? null : serve1 - serve0;
  const perOrch = (s) => (s === null ? null : Math.round((s * 1e6) / n));
  latencies.sort((a, b) => a - b);
  const pct = (q) => latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil(q * latencies.length) - 1))];
  await worker.stop();
  await client.stop();
  await serve.stop();
  log(JSON.stringify({ workload: "sidecar-js", instances: n, concurrency: c, activities: n * 5, seconds,
                       orchestrations_per_sec: Math.round((n / seconds) * 10) / 10, p50_ms: pct(0.5), p99_ms: pct(0.99),
                       failed, serve_cpu_seconds: serveCpuSeconds, serve_cpu_us_per_orchestration: perOrch(serveCpuSeconds),
                       node_cpu_seconds: nodeCpu, node_cpu_us_per_orchestration: perOrch(nodeCpu),
                       load_average_1m_at_start: loadAtStart }));
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
