/**
 * A Portcullis core for benchmarking, set up the way `portcullis start` sets one up: embedded
 * stores (SQLite in a fresh data directory, replay protection in process memory), silent logs,
 * and keys created through the key service: by default one native HMAC key allowed the benchmark
 * routes; the dialect benchmark passes its own routes and keys. No limits unless asked for
 * (`limits`, e.g. `benchLimits()`), and the memory hot store unless another is given (`hot`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Portcullis, initDataDir, openDataDir, parseConfig, parseCreateKeyInput, valueOrThrow } from "../packages/portcullis/dist/index.js";
import { SessionAuthority } from "../packages/portcullis/dist/sessions/authority.js";
import { silentLogger } from "../packages/portcullis/dist/log/logger.js";
import { HpkeKeyring } from "../packages/portcullis/dist/custody/hpke.js";
import { ROUTES, SCOPES } from "./signing.js";

/**
 * The limit every benchmark limit is raised to (units per window). Large enough that no benchmark
 * request is ever refused (a GET weighs 20: 5 million GETs a minute from one address), and small
 * enough for the hot stores' exactness bound (limit × window below 2^53, which 10^9 per day is not).
 */
export const BENCH_LIMIT = 100_000_000;

/**
 * Waits until the Redis hot store's epoch is known and a request signed now is past its fence
 * (docs/replay.md): a private Redis started a moment ago began its replay memory then, and a
 * request signed in whole seconds, less the 1 s clock allowance, could predate it.
 */
export async function pastFence(hot) {
  const start = await hot.epoch();
  const wait = start + 2_000 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

/**
 * The limits a gateway started from a config without a `limits` section gets (DEFAULT_LIMITS,
 * default shield, no concurrency cap), read through the real config parser, with every limit
 * raised to BENCH_LIMIT: same names, scopes, kinds and windows, so each request takes the full
 * charge path (a GET: the address's and the key's weight; a POST order: also both order counts),
 * but none is ever refused.
 */
export function benchLimits() {
  const { limits } = parseConfig({ gateway: { upstream: "http://127.0.0.1:1" }, routes: ROUTES }, tmpdir());
  return { ...limits, specs: limits.specs.map((spec) => ({ ...spec, limit: BENCH_LIMIT })) };
}

/** The default key: native HMAC-SHA256, allowed the benchmark routes. */
const DEFAULT_KEYS = [{ account: "bench", scopes: SCOPES }];

/**
 * Builds a core in a temporary data directory and creates its keys. `now` is the core's clock
 * (default: real time); `timing` turns on per-stage timings; `routes` is the route table
 * (default: the native benchmark routes); `keys` lists the key-creation inputs (what
 * `parseCreateKeyInput` takes; default one native HMAC key); `limits` are the core's limits
 * (default none); `hot` its hot store (default process memory; closed with the core); `sessions`
 * gives the core a session authority (logon and session-signed requests); `audit` its audit
 * settings (default: the core's); `metrics` and `stats` the decision counters the pipelines' observe
 * feeds (default none: bench/live-stats-bench.js); `sealing` gives it an HPKE keyring (sealed orders,
 * benchmark 22) and `windowMs` its freshness window. Resolves to
 * `{ core, keys, keyId, secret, close }`: `keys` holds `{ id, secret }` per input, in order
 * (`secret` is null for a public key), `keyId` and `secret` are the first key's; `close` shuts the
 * core down and deletes the directory.
 */
export async function createBenchCore({ now = Date.now, timing = false, routes = ROUTES, keys = DEFAULT_KEYS, limits, hot, sessions = false, audit, metrics, stats, sealing = false, windowMs } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "portcullis-bench-"));
  let data = null;
  let core = null;
  try {
    await initDataDir(dataDir, "live");
    data = await openDataDir(dataDir);
    const authority = sessions ? await SessionAuthority.open({ meta: data.store, envelope: data.envelope, environment: data.environment }) : undefined;
    // Sealed orders (benchmark 22): the gateway's HPKE keys, a current one made now.
    const keyring = sealing ? new HpkeKeyring({ store: data.store.hpke, envelope: data.envelope, now }) : null;
    await keyring?.refresh();
    core = new Portcullis({
      store: data.store,
      envelope: data.envelope,
      environment: data.environment,
      routes,
      timing,
      now,
      logger: silentLogger(),
      ...(limits === undefined ? {} : { limits }),
      ...(hot === undefined ? {} : { hot }),
      ...(authority === undefined ? {} : { sessions: authority }),
      ...(audit === undefined ? {} : { audit }),
      ...(metrics === undefined ? {} : { metrics }),
      ...(stats === undefined ? {} : { stats }),
      ...(keyring === null ? {} : { sealing: keyring }),
      ...(windowMs === undefined ? {} : { windowMs }),
    });
    const created = [];
    for (const input of keys) {
      const { key, secret } = await core.keys.create(valueOrThrow(parseCreateKeyInput(input, now())), "bench");
      created.push({ id: key.id, secret });
    }
    return {
      core,
      keys: created,
      keyId: created[0].id,
      secret: created[0].secret,
      close: async () => {
        await core.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (core !== null) await core.close();
    else {
      if (data !== null) await data.store.close();
      await hot?.close();
    }
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}
