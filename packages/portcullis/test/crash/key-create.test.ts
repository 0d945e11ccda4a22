/**
 * Crash loop: key creation. A real `portcullis start` process creates keys for two admin API
 * clients while a `portcullis keys create --data` process writes the same database; both are
 * SIGKILLed at a random moment, and the gateway is started again on the same data directory.
 *
 * Acknowledged = a 201 answer received (admin API) or an exit 0 with the key printed (CLI). After
 * each restart: the start succeeds; every acknowledged key is in the store with the secret that
 * was printed, and the restarted gateway accepts a request it signs; every key in the store is
 * whole (its secret decrypts, one create change, one `key.create` audit entry, written in the
 * creating transaction: docs/audit.md, "changes"); `portcullis audit verify` passes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { startEchoUpstream } from "../support/gateway.js";
import { type Credential, LOOPS, LOOP_TIMEOUT_MS, adminCall, auditVerify, checkStore, kill, loopRandom, refusedKeys, sleep, spawnCli, startGateway, strayFiles, writeConfig } from "./support.js";

let dir: string;
let data: string;
let config: string;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
let admin: Credential;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-crash-create-"));
  data = join(dir, "data");
  upstream = await startEchoUpstream();
  expect((await runCli(["init", "--data", data, "--environment", "test"])).code).toBe(0);
  const made = await runCli(["keys", "create", "--data", data, "--account", "ops", "--scopes", "admin:keys", "--operator", "--json"]);
  expect(made.code).toBe(0);
  admin = JSON.parse(made.stdout) as Credential;
  config = writeConfig(join(dir, "portcullis.json"), data, upstream.url);
});
afterAll(async () => {
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("crash loop: key creation", () => {
  it("SIGKILL mid-creation loses no acknowledged key, leaves no half-created one, and the chain verifies", async () => {
    const random = loopRandom("key-create");
    const acked = new Map<string, string>();
    let previous: Credential[] = [];
    const counts = { acknowledged: 0, viaCli: 0, committedUnacknowledged: 0, cliKilled: 0 };
    for (let i = 0; i < LOOPS; i++) {
      const where = `seed ${random.seed}, iteration ${i}`;
      const gw = await startGateway(config);
      // The restart accepts the keys acknowledged before the last kill.
      expect(await refusedKeys(gw.gateway, previous), where).toEqual([]);
      const thisRound: Credential[] = [];
      let killed = false;
      const viaApi = async (): Promise<void> => {
        try {
          while (!killed) {
            const res = await adminCall(gw.admin, admin, "POST", "/portcullis/v1/keys", { account: "acct-crash", scopes: ["read"] });
            expect(res.status, where).toBe(201);
            thisRound.push({ id: String(res.body.id), secret: String(res.body.secret) });
          }
        } catch (err) {
          if (!killed) throw err; // a broken connection is expected only once the kill is under way
        }
      };
      let cli: ReturnType<typeof spawnCli> | null = null;
      const viaCli = async (): Promise<void> => {
        while (!killed) {
          cli = spawnCli(["keys", "create", "--data", data, "--account", "acct-cli", "--scopes", "read", "--json"]);
          const res = await cli.done;
          if (res.code !== 0) {
            expect(killed, `${where}: keys create failed without a kill: ${res.stderr}`).toBe(true);
            counts.cliKilled++;
            return;
          }
          const key = JSON.parse(res.stdout) as Credential;
          thisRound.push(key);
          counts.viaCli++;
        }
      };
      const load = Promise.all([viaApi(), viaApi(), viaCli()]);
      await sleep(random.between(100, 1500));
      killed = true;
      const running = cli as ReturnType<typeof spawnCli> | null;
      await Promise.all([kill(gw.child), running === null ? Promise.resolve() : kill(running.child)]);
      await load;

      for (const k of thisRound) acked.set(k.id, k.secret);
      counts.acknowledged += thisRound.length;
      const check = await checkStore(data);
      expect(check.problems, where).toEqual([]);
      for (const k of thisRound) expect(check.secrets.get(k.id), `${where}: acknowledged key ${k.id}`).toBe(k.secret);
      expect(strayFiles(data), where).toEqual([]);
      const verified = await auditVerify(data);
      expect(verified, where).toMatchObject({ code: 0, ok: true, problem: null });
      previous = thisRound;
      counts.committedUnacknowledged = [...check.keys.keys()].filter((id) => id !== admin.id && !acked.has(id)).length;
    }
    // The last restart: every key acknowledged in the whole loop still signs.
    const gw = await startGateway(config);
    try {
      expect(await refusedKeys(gw.gateway, [...acked].map(([id, secret]) => ({ id, secret }))), `seed ${random.seed}`).toEqual([]);
    } finally {
      await kill(gw.child);
    }
    expect(counts.acknowledged).toBeGreaterThan(LOOPS);
    console.log(`crash loop key-create: ${LOOPS} kills, ${counts.acknowledged} keys acknowledged (${counts.viaCli} by the CLI), ${counts.committedUnacknowledged} committed but unacknowledged, ${counts.cliKilled} CLI processes killed mid-run, 0 lost`);
  }, LOOP_TIMEOUT_MS);
});
