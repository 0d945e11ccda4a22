/**
 * `portcullis demo` as a new user meets it when something goes wrong: a port already taken (a
 * second `npm start`) is one clear line naming the option that moves it, and a failed start
 * leaves no key material on disk. Each run gets its own TMPDIR, so "no temporary directory
 * remains" is exact even with other demos running on the machine.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { type Server, createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, runCli } from "../support/cli.js";

let occupied: Server;
let port: number;
const dirs: string[] = [];

beforeAll(async () => {
  occupied = createServer();
  await new Promise<void>((resolve) => occupied.listen(0, "127.0.0.1", resolve));
  port = (occupied.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((resolve) => occupied.close(() => { resolve(); }));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** An empty directory to serve as the demo's TMPDIR. */
function freshTmp(): string {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-demo-start-test-"));
  dirs.push(dir);
  return dir;
}

const FREE = ["--port", "0", "--admin-port", "0", "--upstream-port", "0"];

function withPort(option: string): string[] {
  const args = [...FREE];
  args[args.indexOf(option) + 1] = String(port);
  return args;
}

describe("portcullis demo on a port already in use", () => {
  it.each(["--port", "--admin-port", "--upstream-port"])("names the port and %s, exits 1, and removes its temporary data directory", async (option) => {
    const tmp = freshTmp();
    const result = await runCli(["demo", ...withPort(option)], { TMPDIR: tmp });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(`DEMO_PORT_IN_USE: port ${String(port)} (${option}) is in use; is a demo already running? Choose another with ${option} N\n`);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it("with --json, reports the stable code DEMO_PORT_IN_USE", async () => {
    const tmp = freshTmp();
    const result = await runCli(["demo", "--json", ...withPort("--port")], { TMPDIR: tmp });
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stderr)).toEqual({
      error: { code: "DEMO_PORT_IN_USE", message: `port ${String(port)} (--port) is in use; is a demo already running? Choose another with --port N` },
    });
    expect(readdirSync(tmp)).toEqual([]);
  });

  it("never removes a data directory the user gave with --data", async () => {
    const tmp = freshTmp();
    const data = join(tmp, "mine");
    mkdirSync(data);
    const result = await runCli(["demo", "--data", data, ...withPort("--admin-port")], { TMPDIR: tmp });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("(--admin-port) is in use");
    expect(existsSync(join(data, "keyring.json"))).toBe(true);
    expect(readdirSync(tmp)).toEqual(["mine"]);
  });
});

describe("portcullis demo's stderr", () => {
  it("carries refusals, not audit checkpoints, and the temporary directory goes at SIGTERM", async () => {
    const tmp = freshTmp();
    const child = spawn(process.execPath, [CLI, "demo", "--json", ...FREE], { stdio: "pipe", env: { ...process.env, TMPDIR: tmp } });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => { resolve(code); }));
    const first = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        const end = out.indexOf("\n");
        if (end >= 0) resolve(out.slice(0, end));
      });
      void exited.then((code) => { reject(new Error(`demo exited with ${String(code)}: ${stderr}`)); });
    });
    const info = JSON.parse(first) as { gateway: string; dataDir: string };
    expect(info.dataDir.startsWith(tmp)).toBe(true);
    const refused = await fetch(`${info.gateway}/api/v3/account`);
    expect(refused.status).toBe(401);
    await refused.body?.cancel();
    // Closing signs a last audit checkpoint (and logs it in production): the demo keeps it off stderr.
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    const lines = stderr.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as { msg: string; code?: string; audit?: unknown });
    expect(lines.filter((l) => l.msg === "audit checkpoint" || l.audit !== undefined)).toEqual([]);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.code).toEqual(expect.any(String));
    expect(readdirSync(tmp)).toEqual([]);
  });
});
