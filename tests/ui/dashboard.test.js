// The dashboard in a real browser: headless Debian chromium driven by puppeteer-core against
// a real `durable ui` (with a bearer token) on a file where the example orchestrations ran,
// run by a `durable worker` in another process. Screenshots of each page go to
// DURABLE_UI_ARTIFACTS (the build dir). Every wait is bounded.
//
// Environment: DURABLE_BIN (the `durable` binary), DURABLE_CHROMIUM (default /usr/bin/chromium),
// DURABLE_UI_ARTIFACTS (where screenshots go).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const puppeteer = require("puppeteer-core");

const bin = process.env.DURABLE_BIN;
const chromium = process.env.DURABLE_CHROMIUM || "/usr/bin/chromium";
const artifacts = process.env.DURABLE_UI_ARTIFACTS || path.join(os.tmpdir(), "durable-ui-artifacts");
const TOKEN = "ui-t0ken";
const HOSTILE = "<img src=x onerror=alert(1)>";
const WAIT = 30000;  // the bound of every wait for the page

let dir, db, worker, ui, base, browser, page;
const dialogs = [];

function durable(...args) {
  const r = spawnSync(bin, ["--db", db, ...args], { encoding: "utf8", timeout: 60000 });
  if (r.status !== 0) throw new Error(`durable ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  return r.stdout.trim();
}

// Starts `durable <args>` and resolves with the child once its stdout matches `ready`.
function start(args, ready) {
  const child = spawn(bin, ["--db", db, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr.on("data", (c) => { err += c.toString(); if (err.length > 20000) err = err.slice(-10000); });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const started = new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`durable ${args[0]} did not start within 30 s: ${err}`)), 30000);
    if (!ready) { clearTimeout(timer); resolve(null); return; }
    child.stdout.on("data", (chunk) => {
      out += chunk.toString();
      const m = out.match(ready);
      if (m) { clearTimeout(timer); resolve(m); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`durable ${args[0]} exited early (${code}): ${err}`)); });
  });
  return { child, exited, started, stop: async () => { child.kill("SIGTERM"); return exited; } };
}

async function apiGet(p, token = TOKEN) {
  const res = await fetch(base + p, { headers: token ? { Authorization: "Bearer " + token } : {} });
  return { status: res.status, body: await res.json() };
}

// Polls the API until `pred(state)` holds for instance `id` (bounded).
async function until(id, pred, what) {
  for (let i = 0; i < 600; i++) {
    const r = await apiGet("/api/v1/instances/" + encodeURIComponent(id));
    if (r.status === 200 && pred(r.body)) return r.body;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`instance ${id} never became ${what}`);
}

async function shot(name) {
  await page.screenshot({ path: path.join(artifacts, name + ".png"), fullPage: true });
}

async function statusOnPage() {
  return page.$eval("#instance-status .status", (e) => e.textContent);
}

async function useToken(token) {
  await page.$eval("#token", (e) => { e.value = ""; });
  if (token) await page.type("#token", token);
  await page.click("#token-form button");
}

const approval = (id) => JSON.stringify({ request_id: id, requester: "ada", amount: 10, timeout_ms: 600000,
                                          escalation_timeout_ms: 600000 });

test.before(async () => {
  assert.ok(bin, "DURABLE_BIN names the durable binary");
  fs.mkdirSync(artifacts, { recursive: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "durable-ui-"));
  db = path.join(dir, "ui.db");
  const tokenFile = path.join(dir, "token");
  fs.writeFileSync(tokenFile, TOKEN + "\n");
  // The examples run on a worker of their own process.
  worker = start(["worker", "--lease", "2s", "--log-level", "warn"], null);
  for (const name of ["order_pipeline", "word_count", "booking_saga"]) {
    durable("start", name, "--wait", "--timeout", "60s");
  }
  for (const id of ["approval-live", "approval-list", "approval-terminate", HOSTILE]) {
    durable("start", "approval", "--id", id, "--input", approval(id));
  }
  ui = start(["ui", "--http", "127.0.0.1:0", "--http-token-file", tokenFile, "--log-level", "warn"],
             /ui: (http:\/\/\S+)\//);
  base = (await ui.started)[1];
  for (const id of ["approval-live", "approval-list", "approval-terminate", HOSTILE]) {
    await until(id, (s) => s.status === "Running", "Running");
  }
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    protocolTimeout: 60000,
  });
  page = await browser.newPage();
  page.setDefaultTimeout(WAIT);
  await page.setViewport({ width: 1400, height: 900 });
  page.on("dialog", async (d) => { dialogs.push(d.type() + ": " + d.message()); await d.dismiss(); });
  await page.goto(base + "/", { waitUntil: "domcontentloaded" });
  await useToken(TOKEN);
});

test.after(async () => {
  if (browser) await browser.close();
  const results = [];
  if (ui) results.push(await ui.stop());
  if (worker) results.push(await worker.stop());
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  for (const r of results) assert.equal(r.code, 0, "durable ui and the worker stop gracefully on SIGTERM");
});

test("the list shows the instances with counts, and filters them", async () => {
  await page.goto(base + "/#/", { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => document.querySelectorAll("#instance-rows tr[data-id]").length >= 7);
  const names = await page.$$eval("#instance-rows tr[data-id] td:nth-child(2)", (tds) => tds.map((t) => t.textContent));
  for (const n of ["order_pipeline", "word_count", "booking_saga", "approval"]) assert.ok(names.includes(n), n);
  await page.waitForSelector("#count-Running");
  assert.match(await page.$eval("#count-Running", (e) => e.textContent), /Running\s*4/);
  await shot("list");

  await page.type("#filter-name", "word_count");
  await page.click("#apply-filters");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#instance-rows tr[data-id]")];
    return rows.length >= 1 && rows.every((r) => r.children[1].textContent === "word_count");
  });
  await page.goto(base + "/#/?status=Running", { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#instance-rows tr[data-id]")];
    return rows.length === 4 && rows.every((r) => r.querySelector(".status").textContent === "Running");
  });
  await shot("list-filtered");
});

test("an instance page shows its timeline with activities, durations and the result", async () => {
  const list = await apiGet("/api/v1/instances?name=order_pipeline");
  const id = list.body.instances[0].id;
  await page.goto(base + "/#/instance/" + encodeURIComponent(id), { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => document.querySelectorAll("#timeline-rows tr[data-kind='activity']").length >= 2);
  assert.equal(await statusOnPage(), "Completed");
  const rows = await page.$$eval("#timeline-rows tr[data-kind='activity']",
                                 (trs) => trs.map((t) => [...t.children].map((c) => c.textContent)));
  for (const r of rows) {
    assert.ok(r[2].length > 0, "activity name");
    assert.match(r[5], /\d+(\.\d+)? (ms|s|min)/, "how long it took");
    assert.ok(["completed", "failed"].includes(r[7]), "outcome " + r[7]);
  }
  const kinds = await page.$$eval("#timeline-rows tr", (trs) => trs.map((t) => t.dataset.kind));
  assert.equal(kinds[0], "ExecutionStarted");
  assert.equal(kinds[kinds.length - 1], "ExecutionCompleted");
  await page.waitForSelector("#instance-output");
  await shot("instance");
});

test("a running instance turns Completed on the open page when a worker in another process finishes it", async () => {
  await page.goto(base + "/#/instance/approval-live", { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => document.querySelector("#instance-status .status")?.textContent === "Running");
  await page.waitForFunction(() => document.getElementById("live").textContent === "live");
  await page.evaluate(() => { window.__notReloaded = true; });
  // Another process raises the event; the worker process runs the instance to its end.
  durable("raise", "approval-live", "approved", "--data", JSON.stringify({ by: "grace", comment: "fine" }));
  await page.waitForFunction(() => document.querySelector("#instance-status .status")?.textContent === "Completed");
  assert.equal(await page.evaluate(() => window.__notReloaded), true, "the page was not reloaded");
  await page.waitForFunction(() => [...document.querySelectorAll("#timeline-rows tr")].some((t) => t.dataset.kind === "ExecutionCompleted"));
  await shot("instance-live");

  // The list updates its row live too.
  await page.goto(base + "/#/?status=Running", { waitUntil: "domcontentloaded" });
  await page.waitForSelector("#instance-rows tr[data-id='approval-list']");
  await page.waitForFunction(() => document.getElementById("live").textContent === "live");
  await page.evaluate(() => { window.__notReloaded = true; });
  durable("raise", "approval-list", "approved", "--data", JSON.stringify({ by: "grace", comment: "ok" }));
  await page.waitForFunction(() =>
    document.querySelector("#instance-rows tr[data-id='approval-list'] .status")?.textContent === "Completed");
  assert.equal(await page.evaluate(() => window.__notReloaded), true);
  await shot("list-live");
});

test("terminate from the page is refused without the token and works with it", async () => {
  await page.goto(base + "/#/instance/approval-terminate", { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => document.querySelector("#instance-status .status")?.textContent === "Running");
  await useToken("");  // no token: the page cannot read or act
  await page.waitForFunction(() => /unauthorized/.test(document.getElementById("notice").textContent));
  await page.click("#terminate");
  await page.waitForFunction(() => /terminate refused: unauthorized.*\(401\)/.test(document.getElementById("notice").textContent));
  await shot("terminate-refused");
  // Nothing was terminated.
  const still = await apiGet("/api/v1/instances/approval-terminate");
  assert.equal(still.body.status, "Running");
  const noToken = await fetch(base + "/api/v1/instances/approval-terminate/terminate", { method: "POST", body: "{}" });
  assert.equal(noToken.status, 401);

  await useToken(TOKEN);
  await page.waitForFunction(() => document.querySelector("#instance-status .status")?.textContent === "Running");
  await page.type("#action-reason", "stuck order");
  await page.click("#terminate");
  await page.waitForFunction(() => document.querySelector("#instance-status .status")?.textContent === "Terminated");
  const audit = await apiGet("/api/v1/audit?instance=approval-terminate");
  assert.ok(audit.body.entries.some((e) => e.action === "terminate" && e.detail === "stuck order"));
  await shot("terminated");
});

test("a hostile instance id renders as text, in the list and on its page", async () => {
  await page.goto(base + "/#/?prefix=" + encodeURIComponent("<img"), { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => document.querySelectorAll("#instance-rows tr[data-id]").length === 1);
  const shown = await page.$eval("#instance-rows tr[data-id] td.id", (e) => e.textContent);
  assert.equal(shown, HOSTILE);
  assert.equal(await page.$$eval("#view img", (imgs) => imgs.length), 0, "no <img> element was made");
  await shot("hostile-list");
  await page.click("#instance-rows tr[data-id] td.id a");
  await page.waitForFunction((h) => document.getElementById("instance-id")?.textContent === h, {}, HOSTILE);
  await page.waitForFunction(() => document.querySelectorAll("#timeline-rows tr").length >= 1);
  assert.equal(await page.$$eval("img", (imgs) => imgs.length), 0);
  await shot("hostile-instance");
  assert.deepEqual(dialogs, [], "no dialog fired");
});

test("the hosts page shows the worker, its names and the leases it holds", async () => {
  await page.goto(base + "/#/hosts", { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => document.querySelectorAll("#host-rows tr").length >= 1);
  const rows = await page.$$eval("#host-rows tr", (trs) => trs.map((t) => t.textContent));
  assert.ok(rows.some((r) => r.includes("live") && r.includes("approval")), rows.join("\n"));
  await shot("hosts");
  await page.goto(base + "/#/audit", { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => document.querySelectorAll("#audit-rows tr").length >= 1);
  await shot("audit");
  assert.deepEqual(dialogs, [], "no dialog fired");
});
