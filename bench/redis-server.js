/**
 * A private redis-server for the Redis benchmarks (6 and 7): a child process on a free loopback
 * port, with persistence off and its own temporary directory, so that the counts and the CPU read
 * from Redis's own statistics are this harness's alone (a shared Redis may be serving a test
 * suite at the same time) and nothing is left behind. It is stopped (SIGTERM, by its pid) when the
 * benchmarks are done.
 *
 * The binary is `redis-server` on the PATH unless PORTCULLIS_BENCH_REDIS_SERVER names another.
 * The statistics connection is named `bench-stats` (CLIENT SETNAME), so that CLIENT LIST tells
 * it apart from the connections under measurement.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Redis } from "ioredis";

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
export const STATS_CONNECTION = "bench-stats";

/** A TCP port free on 127.0.0.1 right now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => {
        resolve(port);
      });
    });
  });
}

/** Spawns redis-server on `port`; resolves once it logs that it accepts connections. */
function spawnRedis(binary, port, dir) {
  return new Promise((resolve, reject) => {
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "notice"];
    const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    const fail = (err) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(err);
    };
    const timer = setTimeout(() => {
      fail(new Error(`${binary}: not ready after ${START_TIMEOUT_MS} ms: ${log.slice(-500)}`));
    }, START_TIMEOUT_MS);
    const onData = (chunk) => {
      log += chunk.toString("utf8");
      if (log.includes("Ready to accept connections")) {
        clearTimeout(timer);
        child.stdout.off("data", onData);
        child.stdout.resume();
        child.stderr.resume();
        child.off("exit", onExit);
        resolve(child);
      }
    };
    const onExit = (code, signal) => {
      fail(new Error(`${binary} exited (${String(code ?? signal)}) before it was ready: ${log.slice(-500)}`));
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (chunk) => {
      log += chunk.toString("utf8");
    });
    child.once("error", fail);
    child.once("exit", onExit);
  });
}

/** INFO text as a Map of field -> value (string). */
function parseInfo(text) {
  const fields = new Map();
  for (const line of text.split("\r\n")) {
    const i = line.indexOf(":");
    if (i > 0 && !line.startsWith("#")) fields.set(line.slice(0, i), line.slice(i + 1));
  }
  return fields;
}

/** CLIENT LIST as an array of { field: value } objects. */
function parseClientList(text) {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => Object.fromEntries(line.trim().split(" ").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])));
}

/**
 * Starts a private redis-server. Resolves to `{ url, port, version, stats, stop }`:
 *
 * - `stats.commands()`: INFO commandstats as a Map of command name -> calls;
 * - `stats.cpuUs()`: the server's CPU time so far (used_cpu_user + used_cpu_sys, µs);
 * - `stats.clients()`: CLIENT LIST, parsed;
 * - `stats.monitor()`: a MONITOR connection; resolves to `{ events, mark, stop }`, where `events`
 *   collects `{ command, source, phase }` for every command Redis reports (source "lua" for a
 *   command a script ran, else the client's address), and `mark(phase)` sends a marker (PING
 *   <token>) on the statistics connection and resolves once MONITOR has reported it: every command
 *   Redis ran before the marker is then in `events`, and later ones are tagged `phase`;
 * - `stop()` closes the connections, stops the server and deletes its directory.
 */
export async function startPrivateRedis() {
  const binary = process.env.PORTCULLIS_BENCH_REDIS_SERVER ?? "redis-server";
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-redis-"));
  let child = null;
  let client = null;
  const monitors = [];
  const stop = async () => {
    for (const m of monitors) m.disconnect();
    if (client !== null) client.disconnect();
    if (child !== null && child.exitCode === null && child.signalCode === null) {
      const running = child;
      await new Promise((resolve) => {
        const timer = setTimeout(() => running.kill("SIGKILL"), STOP_TIMEOUT_MS);
        running.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        running.kill("SIGTERM");
      });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    child = await spawnRedis(binary, port, dir);
    client = new Redis({ host: "127.0.0.1", port, connectionName: STATS_CONNECTION, maxRetriesPerRequest: 1 });
    const server = parseInfo(await client.info("server"));
    const stats = {
      async commands() {
        const calls = new Map();
        for (const [field, value] of parseInfo(await client.info("commandstats"))) {
          const m = /^calls=(\d+)/.exec(value);
          if (field.startsWith("cmdstat_") && m !== null) calls.set(field.slice("cmdstat_".length), Number(m[1]));
        }
        return calls;
      },
      async cpuUs() {
        const cpu = parseInfo(await client.info("cpu"));
        return (Number(cpu.get("used_cpu_user")) + Number(cpu.get("used_cpu_sys"))) * 1e6;
      },
      async clients() {
        return parseClientList(String(await client.client("LIST")));
      },
      async monitor() {
        const connection = await client.monitor();
        monitors.push(connection);
        const events = [];
        const token = `pcbench-mark-${process.pid}-${Date.now()}`;
        let phase = null;
        let waiting = null;
        connection.on("monitor", (_time, args, source) => {
          const command = String(args[0]).toLowerCase();
          if (command === "ping" && args[1] === token && waiting !== null) {
            phase = waiting.phase;
            const { resolve } = waiting;
            waiting = null;
            resolve();
            return;
          }
          events.push({ command, source, phase });
        });
        return {
          events,
          mark(next) {
            return new Promise((resolve, reject) => {
              waiting = { phase: next, resolve };
              client.ping(token).catch(reject);
            });
          },
          stop() {
            connection.disconnect();
          },
        };
      },
    };
    return { url: `redis://127.0.0.1:${port}`, port, version: server.get("redis_version") ?? "unknown", stats, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** `after − before` of two `stats.commands()` snapshots, without the zeros. */
export function commandDelta(before, after) {
  const delta = new Map();
  for (const [name, calls] of after) {
    const d = calls - (before.get(name) ?? 0);
    if (d !== 0) delta.set(name, d);
  }
  return delta;
}
