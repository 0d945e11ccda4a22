/**
 * Two probes of `portcullis start --workers 2` under each scheduling policy of node:cluster
 * (docs/processes.md, "Scheduling"):
 *
 *   node bench/workers-probe.js spread   # 4 connections opened at once, 10 times: how many each worker accepted
 *   node bench/workers-probe.js crash    # new connections from 8 loops; one worker SIGKILLed after 1 s: answered, failed, never answered
 *
 * Each starts the real command over a fresh data directory (one public route, hot state in the
 * local Redis under a prefix of its own, deleted afterwards). Which worker accepted a connection
 * is read from /proc (the worker holding the server side of the socket). Bounded: under a minute.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { childrenOf } from "./proc.js";

const CLI = fileURLToPath(new URL("../packages/portcullis/bin/portcullis.js", import.meta.url));
const REDIS_URL = "redis://127.0.0.1:6379";

/** The pid among `pids` holding the server side of 127.0.0.1:`port` ↔ 127.0.0.1:`local`. */
function acceptedBy(pids, port, local) {
  const hex = (p) => `0100007F:${p.toString(16).toUpperCase().padStart(4, "0")}`;
  const row = readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[1] === hex(port) && f[2] === hex(local));
  if (row === undefined) return null;
  for (const pid of pids) {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${row[9]}]`) return pid;
      } catch {
        // closed meanwhile
      }
    }
  }
  return null;
}

function start(config, policy) {
  const child = spawn(process.execPath, [CLI, "start", "--config", config, "--workers", "2"], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, NODE_CLUSTER_SCHED_POLICY: policy },
  });
  return new Promise((resolve, reject) => {
    let buffer = "";
    child.stdout.on("data", (d) => {
      buffer += d.toString();
      const line = buffer.split("\n").find((l) => l.includes("portcullis started"));
      if (line === undefined) return;
      buffer = "";
      child.stdout.removeAllListeners("data");
      child.stdout.resume();
      resolve({ child, port: Number(new URL(JSON.parse(line).gateway).port) });
    });
    child.once("exit", (code) => reject(new Error(`portcullis start exited ${code}`)));
  });
}

function stop(child) {
  return new Promise((resolve) => {
    child.once("exit", resolve);
    child.kill("SIGTERM");
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function spread({ child, port }) {
  const rounds = [];
  for (let round = 0; round < 10; round++) {
    const sockets = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise((resolve) => {
            const s = connect(port, "127.0.0.1", () => {
              s.write("GET /public/time HTTP/1.1\r\nhost: x\r\n\r\n");
              s.once("data", () => resolve(s));
            });
          }),
      ),
    );
    const workers = childrenOf(child.pid);
    const owners = sockets.map((s) => acceptedBy(workers, port, s.localPort));
    rounds.push(workers.map((w) => owners.filter((o) => o === w).length).join("/"));
    for (const s of sockets) s.destroy();
    await sleep(300);
  }
  return rounds.join(" ");
}

async function crash({ child, port }) {
  const counts = { answered: 0, failed: 0, neverAnswered: 0 };
  let running = true;
  const one = () =>
    new Promise((resolve) => {
      let timedOut = false;
      const req = request({ host: "127.0.0.1", port, path: "/public/time", headers: { host: "x", connection: "close" }, agent: false }, (res) => {
        res.resume();
        res.on("end", () => {
          counts.answered++;
          resolve();
        });
      });
      req.on("error", () => {
        if (timedOut) counts.neverAnswered++;
        else counts.failed++;
        resolve();
      });
      req.setTimeout(3000, () => {
        timedOut = true;
        req.destroy();
      });
      req.end();
    });
  const loops = Array.from({ length: 8 }, async () => {
    while (running) await one();
  });
  await sleep(1000);
  process.kill(childrenOf(child.pid)[0], "SIGKILL");
  await sleep(4000);
  running = false;
  await Promise.all(loops);
  return JSON.stringify(counts);
}

async function main() {
  const probe = process.argv[2] === "crash" ? crash : spread;
  const dir = mkdtempSync(join(tmpdir(), "portcullis-workers-probe-"));
  const prefix = `pcbench:p:${randomBytes(4).toString("hex")}:`;
  const redis = new Redis(REDIS_URL);
  try {
    execFileSync(process.execPath, [CLI, "init", "--data", dir, "--environment", "test", "--json"], { stdio: "ignore" });
    const base = JSON.parse(readFileSync(join(dir, "portcullis.json"), "utf8"));
    const config = join(dir, "probe.json");
    writeFileSync(
      config,
      JSON.stringify({
        ...base,
        gateway: { ...base.gateway, host: "127.0.0.1", port: 0 },
        admin: { enabled: false },
        hot: { backend: "redis", url: REDIS_URL, prefix },
        routes: [{ method: "GET", path: "/public/time", permission: "public" }],
      }),
    );
    for (const policy of ["rr", "none"]) {
      const running = await start(config, policy);
      console.log(`${policy}: ${await probe(running)}`);
      await stop(running.child);
    }
  } finally {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
