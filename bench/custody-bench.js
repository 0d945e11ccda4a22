/**
 * Benchmark 11: key custody. For the keyring-file provider and for PKCS#11 (a SoftHSM2 token
 * initialised in a private temporary directory), on a data directory holding `secrets` HMAC keys:
 *
 *   a. KEK rotation: the time to rewrap every stored data key (`rotateKek`, in the same process as
 *      a core that serves signed requests meanwhile, each for a random one of the keys, so most are
 *      key-cache misses whose load races with the rewrap), the requests served during it and how
 *      many failed (target 0);
 *   b. key creation latency through the key service (envelope encryption, the KEK wrap, the SQLite
 *      insert), and the KEK wrap alone;
 *   c. the proof that the request path makes no HSM call: C_* calls counted by the token during
 *      `requests` verified requests on warm keys (target 0), and KEK unwraps counted by a
 *      decorator around the provider for the keyring file.
 *
 * The keys are written straight into the database in one transaction (envelopes made by the real
 * envelope code), because inserting 100k keys one transaction at a time would measure fsync.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";
import { Portcullis, initDataDir, openDataDir, parseConfig, parseCreateKeyInput, valueOrThrow } from "../packages/portcullis/dist/index.js";
import { Envelope } from "../packages/portcullis/dist/custody/envelope.js";
import { rotateKek } from "../packages/portcullis/dist/custody/rotation.js";
import { generateKeyId } from "../packages/portcullis/dist/contract/ids.js";
import { silentLogger } from "../packages/portcullis/dist/log/logger.js";
import { ROUTES, SCOPES, RequestSigner } from "./signing.js";
import { median, quantile } from "./stats.js";

const SOFTHSM_MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"];

/** A private SoftHSM2 token (its own config and token directory), or null when SoftHSM2 is absent. */
function softhsmToken() {
  const module = SOFTHSM_MODULES.find((p) => existsSync(p));
  if (module === undefined || spawnSync("softhsm2-util", ["--version"]).status !== 0) return null;
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-hsm-"));
  mkdirSync(join(dir, "tokens"), { mode: 0o700 });
  const conf = join(dir, "softhsm2.conf");
  writeFileSync(conf, `directories.tokendir = ${join(dir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  process.env.SOFTHSM2_CONF = conf;
  const pin = randomBytes(8).toString("hex");
  execFileSync("softhsm2-util", ["--init-token", "--free", "--label", "bench", "--so-pin", randomBytes(8).toString("hex"), "--pin", pin], { stdio: "pipe" });
  const pinFile = join(dir, "pin");
  writeFileSync(pinFile, pin, { mode: 0o600 });
  return { dir, module, custody: { provider: "pkcs11", module, tokenLabel: "bench", pinFile } };
}

function custodyConfig(raw) {
  return parseConfig({ gateway: { upstream: "http://127.0.0.1:1" }, routes: ROUTES, custody: raw }, tmpdir()).custody;
}

/** A KEK provider decorator that counts wraps and unwraps (the keyring file has no C_* calls to count). */
function counting(kek) {
  const counts = { wrap: 0, unwrap: 0 };
  const provider = {
    get name() {
      return kek.name;
    },
    get activeVersion() {
      return kek.activeVersion;
    },
    wrap: (...args) => {
      counts.wrap++;
      return kek.wrap(...args);
    },
    unwrap: (...args) => {
      counts.unwrap++;
      return kek.unwrap(...args);
    },
    versions: () => kek.versions(),
    addVersion: () => kek.addVersion(),
    retire: (v) => kek.retire(v),
    describe: () => kek.describe(),
    close: () => kek.close(),
  };
  return { provider, counts };
}

/** Writes `n` HMAC keys with real envelopes straight into the database; returns their ids and secrets. */
async function populate(dataDir, envelope, n, progress) {
  const keys = new Array(n);
  const rows = new Array(n);
  const now = Date.now();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      const id = generateKeyId("live");
      const secret = randomBytes(32).toString("base64url");
      keys[i] = { id, secret: Buffer.from(secret, "utf8") };
      rows[i] = [id, await envelope.encrypt(Buffer.from(secret, "utf8"), "key-secret", id)];
      if (i % 20_000 === 0 && i > 0) progress(`    ${i} envelopes`);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const db = new Database(join(dataDir, "portcullis.db"));
  const insert = db.prepare(
    `INSERT INTO keys (id, environment, account, label, algorithm, secret_envelope, scopes, ip_allowlist, dialects, status, created_at, updated_at, revision, limits)
     VALUES (?, 'live', ?, '', 'hmac-sha256', ?, ?, '[]', '["native"]', 'active', ?, ?, 1, '{}')`,
  );
  const scopes = JSON.stringify(SCOPES);
  db.transaction(() => {
    for (let i = 0; i < n; i++) insert.run(rows[i][0], `acct-${i % 1000}`, rows[i][1], scopes, now, now);
  })();
  db.close();
  return keys;
}

async function verifyOne(core, signer) {
  const signed = signer.sign("GET", Math.floor(Date.now() / 1000));
  let ctx = core.verify({ method: "GET", url: signed.url, headers: signed.headers, body: Buffer.alloc(0), socketAddress: "127.0.0.1" }, "bench");
  if (ctx instanceof Promise) ctx = await ctx;
  return ctx;
}

/** Benchmark 11a-c for one provider. */
async function runProvider({ label, custody, secrets, creates, requests, progress }) {
  const dataDir = mkdtempSync(join(tmpdir(), "portcullis-bench-custody-"));
  let data = null;
  let core = null;
  try {
    await initDataDir(dataDir, "live");
    data = await openDataDir(dataDir, { custody });
    const token = data.custody.token;
    const { provider, counts } = counting(data.kek);
    const envelope = new Envelope(provider);
    progress(`  ${label}: writing ${secrets} keys`);
    const t0 = performance.now();
    const keys = await populate(dataDir, envelope, secrets, progress);
    const populateS = (performance.now() - t0) / 1000;
    core = new Portcullis({ store: data.store, envelope, environment: "live", routes: ROUTES, logger: silentLogger() });

    // a. rotation alone, then a second one while serving.
    progress(`  ${label}: rotating the KEK (rewrap of ${secrets} data keys), no load`);
    const quietCallsBefore = token?.callCount ?? 0;
    const quietStart = performance.now();
    const quiet = await rotateKek(dataDir, data.store, envelope, { settleMs: 0 });
    const quietS = (performance.now() - quietStart) / 1000;
    const quietCalls = (token?.callCount ?? 0) - quietCallsBefore;
    progress(`  ${label}: rotating the KEK again while serving signed requests`);
    const signers = new Map();
    const signerOf = (i) => {
      let s = signers.get(i);
      if (s === undefined) {
        s = new RequestSigner(keys[i].id, keys[i].secret);
        signers.set(i, s);
      }
      return s;
    };
    let done = false;
    let served = 0;
    let failed = 0;
    const failures = new Map();
    const latencies = [];
    const callsBefore = token?.callCount ?? 0;
    const started = performance.now();
    const rotation = rotateKek(dataDir, data.store, envelope, { settleMs: 500 }).finally(() => {
      done = true;
    });
    const client = async () => {
      while (!done) {
        const i = Math.floor(Math.random() * keys.length);
        const t = performance.now();
        try {
          const ctx = await verifyOne(core, signerOf(i));
          if (ctx.denial !== null) {
            failed++;
            failures.set(ctx.denial.code, (failures.get(ctx.denial.code) ?? 0) + 1);
          }
        } catch (err) {
          failed++;
          failures.set(String(err?.code ?? "exception"), (failures.get(String(err?.code ?? "exception")) ?? 0) + 1);
        }
        latencies.push(performance.now() - t);
        served++;
        // Paced (about 1000 requests a second per client), so the load is steady, not a busy loop.
        await sleep(1);
      }
    };
    const [result] = await Promise.all([rotation, client(), client(), client(), client()]);
    const rotateS = (performance.now() - started) / 1000;
    const rotationCalls = (token?.callCount ?? 0) - callsBefore;

    // b. key creation latency.
    progress(`  ${label}: creating ${creates} keys through the key service`);
    const createMs = [];
    for (let i = 0; i < creates; i++) {
      const t = performance.now();
      await core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "bench-create", scopes: SCOPES }, Date.now())), "bench");
      createMs.push(performance.now() - t);
    }
    const wrapMs = [];
    for (let i = 0; i < creates; i++) {
      const dataKey = randomBytes(32);
      const t = performance.now();
      await provider.wrap(dataKey, Buffer.from(`bench/${i}`));
      wrapMs.push(performance.now() - t);
    }

    // c. the request path: warm keys, then count provider and C_* calls during `requests` requests.
    progress(`  ${label}: ${requests} verified requests on warm keys, counting KEK and HSM calls`);
    const warm = Array.from({ length: 100 }, (_, i) => i);
    // Loaded afresh now (not left from the rotation phase, when they could be near their refresh
    // time): a warm key is reloaded once a minute, and the count below is about warm keys.
    core.cache.evict(warm.map((i) => keys[i].id));
    for (const i of warm) {
      const ctx = await verifyOne(core, signerOf(i));
      if (ctx.denial !== null) throw new Error(`warm-up request denied: ${ctx.denial.code}`);
    }
    const unwrapsBefore = counts.unwrap + counts.wrap;
    const hsmBefore = token?.callCount ?? 0;
    let hotDenied = 0;
    for (let n = 0; n < requests; n++) {
      const ctx = await verifyOne(core, signerOf(warm[n % warm.length]));
      if (ctx.denial !== null) hotDenied++;
    }
    return {
      label,
      provider: data.kek.name,
      secrets,
      populateS,
      quiet: { seconds: quietS, rewrapped: quiet.rewrapped, retired: quiet.retired, rewrapFailures: quiet.failures.length, hsmCalls: token === null ? null : quietCalls },
      rotation: {
        seconds: rotateS,
        rewrapped: result.rewrapped,
        passes: result.passes,
        retired: result.retired,
        rewrapFailures: result.failures.length,
        hsmCalls: token === null ? null : rotationCalls,
        served,
        failed,
        failures: Object.fromEntries(failures),
        p50Ms: median(latencies),
        p99Ms: quantile(latencies, 0.99),
      },
      create: { n: creates, p50Ms: median(createMs), p99Ms: quantile(createMs, 0.99), wrapP50Ms: median(wrapMs), wrapP99Ms: quantile(wrapMs, 0.99) },
      hotPath: { requests, denied: hotDenied, kekCalls: counts.unwrap + counts.wrap - unwrapsBefore, hsmCalls: token === null ? null : (token.callCount - hsmBefore) },
    };
  } finally {
    if (core !== null) await core.close();
    if (data !== null) await data.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * Runs benchmark 11. Resolves to `{ keyring, pkcs11, hsmError }`; `pkcs11` is null (and
 * `hsmError` says why) when SoftHSM2 is not installed.
 */
export async function runCustodyBench({ secrets, hsmSecrets = secrets, creates, requests, progress }) {
  const keyring = await runProvider({ label: "keyring file", custody: custodyConfig({ provider: "keyring" }), secrets, creates, requests, progress });
  const hsm = softhsmToken();
  if (hsm === null) return { keyring, pkcs11: null, hsmError: "SoftHSM2 is not installed (apt-get install softhsm2)" };
  try {
    const pkcs11 = await runProvider({ label: "PKCS#11 (SoftHSM2)", custody: custodyConfig(hsm.custody), secrets: hsmSecrets, creates, requests, progress });
    return { keyring, pkcs11, hsmError: null, module: hsm.module };
  } finally {
    rmSync(hsm.dir, { recursive: true, force: true });
  }
}

const fmtMs = (ms) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));

/** The report section of benchmark 11: `{ summary, text, failures }` (see run.js). */
export function custodySection(result) {
  const { keyring, pkcs11, hsmError } = result;
  const runs = [keyring, ...(pkcs11 === null ? [] : [pkcs11])];
  const failed = runs.reduce((n, r) => n + r.rotation.failed + r.hotPath.denied + r.rotation.rewrapFailures + r.quiet.rewrapFailures, 0);
  const hotCalls = pkcs11 === null ? null : pkcs11.hotPath.hsmCalls;
  const quietRow = (r) => [
    r.label,
    String(r.quiet.rewrapped),
    `${r.quiet.seconds.toFixed(1)} s`,
    `${fmtMs((r.quiet.seconds * 1e6) / Math.max(1, r.quiet.rewrapped))} µs`,
    r.quiet.hsmCalls === null ? "–" : String(r.quiet.hsmCalls),
    r.quiet.retired.join(", "),
  ];
  const row = (r) => [
    r.label,
    String(r.rotation.rewrapped),
    `${r.rotation.seconds.toFixed(1)} s`,
    r.rotation.hsmCalls === null ? "–" : String(r.rotation.hsmCalls),
    String(r.rotation.served),
    `${fmtMs(r.rotation.p50Ms)} / ${fmtMs(r.rotation.p99Ms)}`,
    `**${r.rotation.failed}**${r.rotation.failed > 0 ? ` (${JSON.stringify(r.rotation.failures)})` : ""}`,
  ];
  const table = (header, rows) => [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
  const text = [
    "## 11. Key custody: rotation under load, key creation, HSM calls per request",
    "",
    `Each provider gets a data directory with ${keyring.secrets} HMAC keys${pkcs11 !== null && pkcs11.secrets !== keyring.secrets ? ` (${pkcs11.secrets} for the HSM)` : ""}, their envelopes made by the real envelope code and written in one transaction. The PKCS#11 provider runs against SoftHSM2${result.module === undefined ? "" : ` (\`${result.module}\`)`} with a token initialised for the run in a temporary directory. **Rotation**: \`rotateKek\` (new KEK version, rewrap of every data key, a settle pause and a final pass, retirement of the old version), first alone, then again in the same process as a \`Portcullis\` core that verifies signed requests meanwhile, each for a random one of the keys, so most requests are key-cache misses whose key load (an unwrap) races with the rewrap. **Key creation**: \`core.keys.create\` (secret, envelope encryption, KEK wrap, SQLite insert with fsync), and the KEK wrap alone. **Request path**: 100 keys warmed, then ${keyring.hotPath.requests} verified requests, counting the C_* calls the token made and the KEK wraps/unwraps (a counting decorator around the provider).`,
    "",
    "Rotation alone (no requests, no settle pause):",
    "",
    table(["Provider", "Data keys rewrapped", "Rotation time", "Per data key", "C_* calls", "Versions retired"], runs.map(quietRow)),
    "",
    "A second rotation while the core serves (4 paced clients, each about one request per millisecond at most; the 500 ms settle pause included):",
    "",
    table(
      ["Provider", "Data keys rewrapped", "Rotation time", "C_* calls during it (rewrap and key loads)", "Requests served during it", "Request p50 / p99 ms", "Failed requests (target 0)"],
      runs.map(row),
    ),
    "",
    table(
      ["Provider", "Key creation p50 ms", "p99 ms", "KEK wrap alone p50 ms", "p99 ms"],
      runs.map((r) => [r.label, fmtMs(r.create.p50Ms), fmtMs(r.create.p99Ms), fmtMs(r.create.wrapP50Ms), fmtMs(r.create.wrapP99Ms)]),
    ),
    "",
    table(
      ["Provider", "Verified requests (warm keys)", "Denied", "KEK wraps + unwraps", "C_* calls to the HSM (target 0)"],
      runs.map((r) => [r.label, String(r.hotPath.requests), String(r.hotPath.denied), String(r.hotPath.kekCalls), r.hotPath.hsmCalls === null ? "– (no HSM)" : `**${r.hotPath.hsmCalls}**`]),
    ),
    "",
    ...(hsmError === null ? [] : [`The PKCS#11 rows were not run: ${hsmError}.`, ""]),
    "Requests and rotation share one process and its event loop, so the request latency during a rotation includes the rewrap batches' turns. A key-cache miss costs one KEK unwrap (an HSM round trip with PKCS#11); a warm key costs none: the decrypted secret is a KeyObject in the key cache, reloaded once a minute.",
    "",
  ];
  const pass = failed === 0 && (hotCalls === null || hotCalls === 0);
  return {
    summary: [
      "Key custody: failed requests during a KEK rewrap; HSM calls per verified request",
      `${runs.reduce((n, r) => n + r.rotation.failed, 0)} failed of ${runs.reduce((n, r) => n + r.rotation.served, 0)}; ${hotCalls === null ? "no HSM" : `${hotCalls} C_* calls in ${pkcs11?.hotPath.requests ?? 0} requests`}`,
      "0 and 0",
      pass ? "**PASS**" : "**FAIL**",
    ],
    text,
    failures: failed,
  };
}

// `node bench/custody-bench.js [--quick]`: this benchmark alone (after `npm run build`).
if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const quick = process.argv.includes("--quick");
  const settings = quick ? { secrets: 2_000, creates: 20, requests: 500 } : { secrets: 100_000, creates: 200, requests: 5_000 };
  const result = await runCustodyBench({ ...settings, progress: (line) => process.stderr.write(`${line}\n`) });
  const section = custodySection(result);
  process.stdout.write(`${[`| ${section.summary.join(" | ")} |`, "", ...section.text].join("\n")}\n`);
  if (section.failures > 0) process.exitCode = 1;
}
