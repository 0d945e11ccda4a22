/**
 * Crash loop: KEK rotation. A data directory holds enough envelopes (HMAC secrets, OKX passphrase
 * hashes, the gateway's own signing keys and stored secrets) that a rewrap takes a while; each
 * iteration runs `portcullis custody rotate --settle 0` (which retires the old versions) beside a
 * running `portcullis start` that creates keys meanwhile (its wraps race the rotation), and
 * SIGKILLs both at a random moment after the new KEK version appeared (during the rewrap, the
 * final pass or the retirement).
 *
 * The keys created meanwhile are the point: the 60-iteration run once found that a rotation which
 * retires old versions while another process is creating keys could destroy the version a new
 * key's secret had just been wrapped under (the wrap used the old version — a token's view of the
 * active version is up to 250 ms old — and the row landed after the rotation's last pass; with
 * `--settle 0` nothing waited for it). The durable KEK floor closes that race: the rotation raises
 * it in the transaction that finds nothing left under old versions, before destroying any, and
 * every envelope write's transaction refuses an envelope below it (the gateway wraps again under
 * the active version and stores that). Every key the gateway answered 201 for must decrypt.
 *
 * After each kill: every key's secret still decrypts, to the secret it was issued with; no envelope
 * is under a KEK version the provider no longer holds; `custody status` answers; the restarted
 * gateway accepts requests signed with the keys; the next iteration's `custody rotate` starts
 * over from whatever the kill left (resume = rotate again: it adds a version and rewraps everything
 * not under it) and is itself killed. At the end a rotation runs to
 * completion, leaving one KEK version that holds every envelope, every key signs, and
 * `portcullis audit verify` passes. Run on the keyring file and on a SoftHSM2 token.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CustodyConfig } from "../../src/custody/config.js";
import { parseCustodyConfig } from "../../src/custody/config.js";
import { openDataDir } from "../../src/core/data-dir.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { KeyService } from "../../src/keys/service.js";
import { runCli } from "../support/cli.js";
import { startEchoUpstream } from "../support/gateway.js";
import { SoftHsm, softhsmOrSkip } from "../support/softhsm.js";
import { type Credential, LOOPS, LOOP_TIMEOUT_MS, adminCall, auditVerify, checkStore, kill, loopRandom, refusedKeys, sleep, spawnCli, startGateway, strayFiles, writeConfig } from "./support.js";

let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
const dirs: string[] = [];

beforeAll(async () => {
  upstream = await startEchoUpstream();
});
afterAll(async () => {
  await upstream.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Setup {
  readonly name: string;
  readonly data: string;
  readonly config: string;
  /** The custody config in-process checks open the directory with (undefined: the keyring file). */
  readonly custody: CustodyConfig | undefined;
  /** `--data DIR` or `--config FILE` for the custody commands. */
  readonly target: readonly string[];
  /** Changes when the provider's KEK versions change (the keyring file, the token's object files). */
  stamp(): string;
  /** How many HMAC keys to seed. */
  readonly keys: number;
}

/** Seeds `n` HMAC keys (five of them OKX keys with a sealed passphrase: its hash is slow by design) in-process. */
async function seed(setup: Setup, admin: Credential[]): Promise<Map<string, string>> {
  const data = await openDataDir(setup.data, setup.custody === undefined ? {} : { custody: setup.custody });
  const secrets = new Map<string, string>();
  try {
    const service = new KeyService({ store: data.store, envelope: data.envelope, environment: data.environment });
    for (let i = 0; i < setup.keys; i++) {
      const okx = i < 5 ? { dialects: ["native", "okx"], passphrase: "Correct-Horse-1" } : {};
      const { key, secret } = await service.create(valueOrThrow(parseCreateKeyInput({ account: `acct-${i % 7}`, scopes: ["read"], ...okx }, Date.now())), "cli:seed");
      if (secret !== null) secrets.set(key.id, secret);
    }
    const { key, secret } = await service.create(valueOrThrow(parseCreateKeyInput({ account: "ops", scopes: ["admin:keys"], operator: true }, Date.now())), "cli:seed");
    if (secret !== null) admin.push({ id: key.id, secret });
    // The gateway's own signing keys and stored secrets are envelopes too.
    await data.signingKeys.open("session-token");
  } finally {
    await data.close();
  }
  return secrets;
}

type Phase = "before the new version" | "mid-rewrap" | "rewrapped, old version(s) held" | "retired" | "finished";

async function rewrapLoop(setup: Setup): Promise<void> {
  const random = loopRandom(`kek-rewrap (${setup.name})`);
  const admin: Credential[] = [];
  const secrets = await seed(setup, admin);
  const operator = admin[0];
  if (operator === undefined) throw new Error("no admin key");
  // How long a rewrap of this directory takes, uninterrupted (the kill lands inside that window).
  const first = await runCli(["custody", "rotate", ...setup.target, "--settle", "0", "--json"]);
  expect(first.code, first.stderr).toBe(0);
  const calibration = JSON.parse(first.stdout) as { durationMs: number; rewrapped: number };
  expect(calibration.rewrapped).toBeGreaterThan(setup.keys);
  const windowMs = Math.max(20, calibration.durationMs);

  const phases = new Map<Phase, number>();
  let held = (await checkStore(setup.data, setup.custody)).custody.versions;
  let sample: Credential[] = [];
  const all = (): Credential[] => [...secrets].map(([id, secret]) => ({ id, secret }));
  // LOOPS kills; if none of them landed mid-rewrap (a slow machine), more, up to twice as many.
  let iterations = 0;
  for (let i = 0; i < LOOPS || ((phases.get("mid-rewrap") ?? 0) === 0 && i < 2 * LOOPS); i++) {
    iterations++;
    const where = `seed ${random.seed}, ${setup.name}, iteration ${i}`;
    const gw = await startGateway(setup.config);
    // The restart opens every key it is asked for: the last round's new keys and a random sample.
    expect(await refusedKeys(gw.gateway, sample), where).toEqual([]);
    const created: Credential[] = [];
    const state = { killed: false, exited: false };
    const creating = (async () => {
      try {
        while (!state.killed) {
          const res = await adminCall(gw.admin, operator, "POST", "/portcullis/v1/keys", { account: "acct-new", scopes: ["read"] });
          expect(res.status, where).toBe(201);
          created.push({ id: String(res.body.id), secret: String(res.body.secret) });
          await sleep(20);
        }
      } catch (err) {
        if (!state.killed) throw err;
      }
    })();
    const before = setup.stamp();
    const heldBefore = held;
    const rotate = spawnCli(["custody", "rotate", ...setup.target, "--settle", "0", "--json"]);
    void rotate.done.then(() => (state.exited = true));
    // Wait for the new KEK version, then kill somewhere in the rewrap window.
    for (let waited = 0; setup.stamp() === before && !state.exited && waited < 20_000; waited += 2) await sleep(2);
    await sleep(random.between(0, windowMs));
    state.killed = true;
    await Promise.all([kill(rotate.child), kill(gw.child)]);
    await creating;
    const result = await rotate.done;
    for (const k of created) secrets.set(k.id, k.secret);

    const check = await checkStore(setup.data, setup.custody);
    expect(check.problems, where).toEqual([]);
    const wrong = [...secrets].filter(([id, secret]) => check.secrets.get(id) !== secret).map(([id]) => id);
    expect(wrong, `${where}: keys whose secret does not decrypt to what was issued`).toEqual([]);
    const status = check.custody;
    held = status.versions;
    const versionsUsed = Object.keys(status.envelopes.byVersion).map(Number);
    const phase: Phase =
      result.code === 0
        ? "finished"
        : status.versions.join() === heldBefore.join()
          ? "before the new version"
          : versionsUsed.length > 1
            ? "mid-rewrap"
            : status.versions.length > 1
              ? "rewrapped, old version(s) held"
              : "retired";
    phases.set(phase, (phases.get(phase) ?? 0) + 1);
    if (result.code !== 0) expect(result.code, `${where}: ${result.stderr}`).toBe(-1); // killed, not failed
    const cliStatus = await runCli(["custody", "status", ...setup.target, "--json"]);
    expect(cliStatus.code, `${where}: ${cliStatus.stderr}`).toBe(0);
    expect(JSON.parse(cliStatus.stdout), where).toMatchObject({ activeVersion: status.activeVersion, versions: status.versions, envelopes: { total: status.envelopes.total, missingVersions: [], malformed: 0 } });
    expect(strayFiles(setup.data), where).toEqual([]);
    const ids = [...secrets.keys()];
    const picks = Array.from({ length: 40 }, () => ids[random.between(0, ids.length)]).filter((id): id is string => id !== undefined);
    sample = [...created, ...picks.map((id) => ({ id, secret: secrets.get(id) ?? "" }))];
  }
  // Resume: one more rotation, to completion, leaves one KEK version holding every envelope.
  const resumed = await runCli(["custody", "rotate", ...setup.target, "--settle", "0", "--json"]);
  expect(resumed.code, `seed ${random.seed}: ${resumed.stderr}`).toBe(0);
  const done = JSON.parse(resumed.stdout) as { active: number; failures: unknown[] };
  expect(done.failures).toEqual([]);
  const check = await checkStore(setup.data, setup.custody);
  expect(check.problems).toEqual([]);
  expect(check.custody.versions).toEqual([done.active]);
  expect(Object.keys(check.custody.envelopes.byVersion)).toEqual([String(done.active)]);
  expect(strayFiles(setup.data)).toEqual([]);
  const gw = await startGateway(setup.config);
  try {
    expect(await refusedKeys(gw.gateway, all()), `seed ${random.seed}`).toEqual([]);
  } finally {
    await kill(gw.child);
  }
  expect(await auditVerify(setup.data), `seed ${random.seed}`).toMatchObject({ code: 0, ok: true, problem: null });
  const counts = [...phases].map(([p, n]) => `${p} ${n}`).join(", ");
  console.log(`crash loop kek-rewrap (${setup.name}): ${iterations} kills over ${calibration.rewrapped} envelopes (${counts}), ${secrets.size} keys all decrypt and sign, rotation resumed to version ${done.active}`);
  // The loop exists to kill inside the rewrap: at least one kill must have landed there.
  expect(phases.get("mid-rewrap") ?? 0, `seed ${random.seed}: ${counts}`).toBeGreaterThan(0);
}

function keyringSetup(keys: number): Setup {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-crash-kek-"));
  dirs.push(dir);
  const data = join(dir, "data");
  const keyring = join(data, "keyring.json");
  return {
    name: "keyring file",
    data,
    config: writeConfig(join(dir, "portcullis.json"), data, upstream.url),
    custody: undefined,
    target: ["--data", data],
    stamp: () => {
      const st = statSync(keyring);
      return `${st.ino}:${st.mtimeMs}`;
    },
    keys,
  };
}

describe("crash loop: KEK rewrap", () => {
  it("keyring file: SIGKILL mid-rewrap loses no secret, and a new rotation resumes", async () => {
    const setup = keyringSetup(1000);
    expect((await runCli(["init", "--data", setup.data, "--environment", "test"])).code).toBe(0);
    await rewrapLoop(setup);
  }, LOOP_TIMEOUT_MS);

  const withHsm = softhsmOrSkip("the PKCS#11 crash loop");
  it.skipIf(!withHsm)("SoftHSM2 token: SIGKILL mid-rewrap loses no secret, and a new rotation resumes", async () => {
    const hsm = new SoftHsm();
    try {
      const token = hsm.initToken();
      const dir = mkdtempSync(join(tmpdir(), "portcullis-crash-hsm-"));
      dirs.push(dir);
      const data = join(dir, "data");
      expect((await runCli(["init", "--data", data, "--environment", "test"], hsm.env)).code).toBe(0);
      const section = hsm.custody(token);
      const config = writeConfig(join(dir, "portcullis.json"), data, upstream.url, section);
      const parsed = parseCustodyConfig(section, "/");
      if (!parsed.ok) throw new Error(parsed.message);
      const tokens = join(hsm.dir, "tokens");
      await rewrapLoop({
        name: "SoftHSM2",
        data,
        config,
        custody: parsed.value,
        target: ["--config", config],
        // SoftHSM's file store: one `.object` file per object in the token's directory.
        stamp: () =>
          readdirSync(tokens, { recursive: true })
            .map(String)
            .filter((name) => name.endsWith(".object"))
            .sort()
            .join(),
        keys: 300,
      });
    } finally {
      hsm.cleanup();
    }
  }, LOOP_TIMEOUT_MS);
});
