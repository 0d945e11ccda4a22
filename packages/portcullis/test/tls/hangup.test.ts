/**
 * SIGHUP reloads TLS (docs/tls.md), and comes from automation at any time (a renewal hook, the
 * primary passing it on to a worker that is still starting). Its default action ends a process:
 * Portcullis handles it from the start, and one that arrives while starting is acted on once the
 * process serves.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { onHangup } from "../../src/runtime/workers.js";

/** The built worker entry, as node:cluster runs it (the suite's global setup builds dist). */
const WORKER_MAIN = fileURLToPath(new URL("../../dist/runtime/worker-main.js", import.meta.url));

function nextMessage(child: ChildProcess): Promise<Record<string, unknown> | null> {
  return new Promise((resolve) => {
    const onExit = (): void => {
      resolve(null);
    };
    child.once("exit", onExit);
    child.once("message", (m) => {
      child.off("exit", onExit);
      resolve(m as Record<string, unknown>);
    });
  });
}

describe("SIGHUP before the process serves", () => {
  it("a worker that is still starting survives it (it ended the worker before)", async () => {
    const child = fork(WORKER_MAIN, [], { stdio: ["ignore", "ignore", "pipe", "ipc"], env: { ...process.env, PORTCULLIS_WORKER: "1" } });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once("exit", (code, signal) => {
        resolve({ code, signal });
      });
    });
    try {
      // The worker asks the primary for the config: it is starting.
      expect(await nextMessage(child)).toEqual({ portcullis: "config?" });
      child.kill("SIGHUP");
      // Then a config that cannot start: the worker says why and exits 1, by itself.
      child.send({ portcullis: "config", text: "{", baseDir: "/nonexistent", file: "/nonexistent/portcullis.json" });
      const answer = await nextMessage(child);
      expect(answer).toMatchObject({ portcullis: "failed", code: "CONFIG_UNREADABLE" });
      expect(await exited).toEqual({ code: 1, signal: null });
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("onHangup: a signal while starting is acted on once ready, and every later one at once", () => {
    const before = new Set(process.listeners("SIGHUP"));
    const hangup = onHangup();
    const ours = process.listeners("SIGHUP").filter((l) => !before.has(l));
    try {
      expect(ours).toHaveLength(1);
      process.emit("SIGHUP", "SIGHUP");
      process.emit("SIGHUP", "SIGHUP");
      let reloads = 0;
      hangup.ready(() => {
        reloads++;
      });
      expect(reloads).toBe(1);
      process.emit("SIGHUP", "SIGHUP");
      expect(reloads).toBe(2);
      // Ready without a signal while starting: no reload.
      const quiet = onHangup();
      let quietReloads = 0;
      quiet.ready(() => {
        quietReloads++;
      });
      expect(quietReloads).toBe(0);
    } finally {
      for (const l of process.listeners("SIGHUP")) if (!before.has(l)) process.off("SIGHUP", l);
    }
  });
});
