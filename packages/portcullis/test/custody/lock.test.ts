/**
 * The custody locks (`custody.lock`, `keyring.json.lock`) and what a killed process leaves beside
 * the keyring, with real processes.
 *
 * Found by the crash loops' review (issue 13): the locks were pid files, and a pid file whose
 * process died names a pid that may live again — in a container the restarted process is often
 * given the very pid its killed predecessor wrote (a rotation job run as pid 1, SIGKILLed, then run
 * again as pid 1 waited for itself and was refused with CUSTODY_ROTATION_IN_PROGRESS for good;
 * reproduced with `unshare --pid --fork`). The lock is now held by the kernel for the process
 * (SQLite's advisory lock on the file), so it ends with the process, whatever its pid.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CustodyError } from "../../src/custody/errors.js";
import { withFileLock } from "../../src/custody/lock.js";
import { CLI, runCli } from "../support/cli.js";

let dir: string;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-lock-"));
  expect((await runCli(["init", "--data", dir, "--environment", "test"])).code).toBe(0);
  expect((await runCli(["keys", "create", "--data", dir, "--account", "a", "--scopes", "read", "--json"])).code).toBe(0);
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function keyringStamp(): string {
  const st = statSync(join(dir, "keyring.json"));
  return `${st.ino}:${st.mtimeMs}`;
}

/** Starts `custody rotate` with a long settle: it holds the custody lock while it waits. */
async function rotationHoldingTheLock(settleMs: number): Promise<ChildProcess> {
  const before = keyringStamp();
  const child = spawn(process.execPath, [CLI, "custody", "rotate", "--data", dir, "--settle", String(settleMs), "--json"], { stdio: "ignore" });
  // Its new KEK version appears once it holds the lock (and then it settles).
  for (let i = 0; i < 500 && keyringStamp() === before; i++) await sleep(10);
  expect(keyringStamp()).not.toBe(before);
  return child;
}

async function sigkill(child: ChildProcess): Promise<void> {
  const gone = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await gone;
}

describe("the custody lock", () => {
  it("a lock file naming a live process that does not hold it (a pid used again after a crash) blocks nothing", async () => {
    // As an older Portcullis left them when it was killed: the pid, as text. This test's own pid
    // is alive, as a restarted container's process is when it is given its predecessor's pid.
    writeFileSync(join(dir, "custody.lock"), `${process.pid}\n`, { mode: 0o600 });
    writeFileSync(join(dir, "keyring.json.lock"), `${process.pid}\n`, { mode: 0o600 });
    const started = Date.now();
    const res = await runCli(["custody", "rotate", "--data", dir, "--settle", "0", "--json"]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ active: 2, retired: [1], failures: [] });
    expect(Date.now() - started).toBeLessThan(4_000); // not the 5 s wait for a holder
  });

  it("a rotation SIGKILLed while it holds the lock blocks nothing: the next one runs at once", async () => {
    const first = await rotationHoldingTheLock(30_000);
    await sigkill(first);
    // Nothing of the lock outlives its holder but the (empty) file: no rollback journal.
    expect(readdirSync(dir).filter((n) => n.includes("lock") && n !== "custody.lock" && n !== "keyring.json.lock")).toEqual([]);
    const started = Date.now();
    const res = await runCli(["custody", "rotate", "--data", dir, "--settle", "0", "--json"]);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ previous: [1, 2], active: 3, retired: [1, 2], failures: [] });
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it("a live holder in another process still excludes: the second rotation is refused with a code", async () => {
    const first = await rotationHoldingTheLock(30_000);
    try {
      const res = await runCli(["custody", "rotate", "--data", dir, "--settle", "0", "--json"]);
      expect(res.code).toBe(1);
      expect(JSON.parse(res.stderr)).toMatchObject({ error: { code: "CUSTODY_ROTATION_IN_PROGRESS" } });
    } finally {
      await sigkill(first);
    }
  }, 20_000);

  it("excludes within one process too, and waits for the holder", async () => {
    const path = join(dir, "custody.lock");
    const order: string[] = [];
    let release = (): void => undefined;
    const held = withFileLock(path, "test", () => {
      order.push("first");
      return new Promise<void>((r) => (release = r));
    });
    await sleep(20);
    const refused = await withFileLock(path, "test", () => Promise.resolve("ran"), 100).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CustodyError);
    expect((refused as CustodyError).code).toBe("CUSTODY_ROTATION_IN_PROGRESS");
    const second = withFileLock(path, "test", () => {
      order.push("second");
      return Promise.resolve();
    }, 5_000);
    await sleep(100);
    expect(order).toEqual(["first"]);
    release();
    await Promise.all([held, second]);
    expect(order).toEqual(["first", "second"]);
  });
});

describe("what a killed keyring replace leaves", () => {
  it("a copy of the keyring left beside it (every KEK, retired ones too) is removed at the next open", async () => {
    // What replaceFileAtomic leaves when its process dies between writing the copy and renaming it.
    const left = join(dir, "keyring.json.0123456789ab.tmp");
    copyFileSync(join(dir, "keyring.json"), left);
    const res = await runCli(["keys", "list", "--data", dir, "--json"]);
    expect(res.code, res.stderr).toBe(0);
    expect(existsSync(left)).toBe(false);
    expect(readdirSync(dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });
});
