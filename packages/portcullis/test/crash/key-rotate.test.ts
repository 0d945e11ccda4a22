/**
 * Crash loop: key rotation. Chains of rotations (each successor rotated in turn, grace 1 h) run
 * through a real `portcullis start` process's admin API and through `portcullis keys rotate --data`
 * beside it; both are SIGKILLed at a random moment and the gateway is started again.
 *
 * Acknowledged = a 201 answer (admin API) or an exit 0 with the successor printed (CLI). After each
 * restart: every acknowledged rotation is in the store, the two keys naming each other, the
 * predecessor expiring at the end of its grace; both keys of every acknowledged rotation sign
 * requests the restarted gateway accepts (the old one for its grace); a rotation that committed
 * but was not acknowledged left a whole successor, and retrying it is refused with
 * KEY_STATE_CONFLICT (never a second successor); the store checks of `checkStore` hold and
 * `portcullis audit verify` passes.
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

const GRACE_MS = 60 * 60 * 1000;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-crash-rotate-"));
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

interface Rotation {
  readonly predecessor: Credential;
  readonly successor: Credential;
  readonly at: number;
}

describe("crash loop: key rotation", () => {
  it("SIGKILL mid-rotation loses no acknowledged rotation and leaves every link mutual", async () => {
    const random = loopRandom("key-rotate");
    // The head of each chain: the newest key whose secret the client holds.
    const heads: (Credential | null)[] = [null, null, null];
    const all: Rotation[] = [];
    const counts = { acknowledged: 0, viaCli: 0, committedUnacknowledged: 0, retriesRefused: 0 };
    let previous: Rotation[] = [];
    let previousCheck: Awaited<ReturnType<typeof checkStore>> | null = null;
    /**
     * On the restarted gateway: both keys of the last round's acknowledged rotations sign; a head
     * whose rotation committed unacknowledged (its successor is whole: checked) refuses a retry
     * with KEY_STATE_CONFLICT, and its chain starts again from a new key.
     */
    const afterRestart = async (gw: Awaited<ReturnType<typeof startGateway>>, where: string): Promise<void> => {
      expect(await refusedKeys(gw.gateway, previous.flatMap((r) => [r.predecessor, r.successor])), where).toEqual([]);
      if (previousCheck === null) return;
      for (let c = 0; c < heads.length; c++) {
        const head = heads[c];
        if (head === null || head === undefined || (previousCheck.keys.get(head.id)?.rotated_to ?? null) === null) continue;
        counts.committedUnacknowledged++;
        const retry = await adminCall(gw.admin, admin, "POST", `/portcullis/v1/keys/${head.id}/rotate`, { grace: "1h" });
        expect(retry, where).toMatchObject({ status: 409, body: { code: "KEY_STATE_CONFLICT" } });
        counts.retriesRefused++;
        heads[c] = null;
      }
    };
    for (let i = 0; i < LOOPS; i++) {
      const where = `seed ${random.seed}, iteration ${i}`;
      const gw = await startGateway(config);
      await afterRestart(gw, where);
      for (let c = 0; c < heads.length; c++) {
        if (heads[c] !== null) continue;
        const res = await adminCall(gw.admin, admin, "POST", "/portcullis/v1/keys", { account: `acct-chain-${c}`, scopes: ["read"] });
        expect(res.status, where).toBe(201);
        heads[c] = { id: String(res.body.id), secret: String(res.body.secret) };
      }
      const thisRound: Rotation[] = [];
      let killed = false;
      const viaApi = async (c: number): Promise<void> => {
        try {
          while (!killed) {
            const head = heads[c];
            if (head === null || head === undefined) return;
            const res = await adminCall(gw.admin, admin, "POST", `/portcullis/v1/keys/${head.id}/rotate`, { grace: "1h" });
            expect(res.status, `${where}: ${JSON.stringify(res.body)}`).toBe(201);
            const successor = { id: String(res.body.id), secret: String(res.body.secret) };
            thisRound.push({ predecessor: head, successor, at: Date.now() });
            heads[c] = successor;
          }
        } catch (err) {
          if (!killed) throw err;
        }
      };
      let cli: ReturnType<typeof spawnCli> | null = null;
      const viaCli = async (c: number): Promise<void> => {
        while (!killed) {
          const head = heads[c];
          if (head === null || head === undefined) return;
          cli = spawnCli(["keys", "rotate", head.id, "--data", data, "--grace", "1h", "--json"]);
          const res = await cli.done;
          if (res.code !== 0) {
            expect(killed, `${where}: keys rotate failed without a kill: ${res.stderr}`).toBe(true);
            return;
          }
          const successor = JSON.parse(res.stdout) as Credential;
          thisRound.push({ predecessor: head, successor, at: Date.now() });
          heads[c] = successor;
          counts.viaCli++;
        }
      };
      const load = Promise.all([viaApi(0), viaApi(1), viaCli(2)]);
      await sleep(random.between(100, 1500));
      killed = true;
      const running = cli as ReturnType<typeof spawnCli> | null;
      await Promise.all([kill(gw.child), running === null ? Promise.resolve() : kill(running.child)]);
      await load;
      all.push(...thisRound);
      counts.acknowledged += thisRound.length;

      const check = await checkStore(data);
      expect(check.problems, where).toEqual([]);
      for (const r of thisRound) {
        const what = `${where}: acknowledged rotation ${r.predecessor.id} -> ${r.successor.id}`;
        expect(check.keys.get(r.successor.id)?.rotated_from, what).toBe(r.predecessor.id);
        expect(check.keys.get(r.predecessor.id)?.rotated_to, what).toBe(r.successor.id);
        expect(check.keys.get(r.predecessor.id)?.expires_at, what).toBeGreaterThan(r.at + GRACE_MS - 120_000);
        expect(check.secrets.get(r.successor.id), what).toBe(r.successor.secret);
      }
      expect(strayFiles(data), where).toEqual([]);
      expect(await auditVerify(data), where).toMatchObject({ code: 0, ok: true, problem: null });

      previous = thisRound;
      previousCheck = check;
    }
    const last = await startGateway(config);
    try {
      await afterRestart(last, `seed ${random.seed}, after the last kill`);
    } finally {
      await kill(last.child);
    }
    // Every key of every acknowledged rotation is still linked as it was acknowledged.
    const final = await checkStore(data);
    expect(final.problems).toEqual([]);
    for (const r of all) expect(final.keys.get(r.predecessor.id)?.rotated_to, `seed ${random.seed}`).toBe(r.successor.id);
    expect(counts.acknowledged).toBeGreaterThan(LOOPS);
    console.log(
      `crash loop key-rotate: ${LOOPS} kills, ${counts.acknowledged} rotations acknowledged (${counts.viaCli} by the CLI), ${counts.committedUnacknowledged} committed but unacknowledged (retry refused ${counts.retriesRefused}), 0 lost`,
    );
  }, LOOP_TIMEOUT_MS);
});
