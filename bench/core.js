/**
 * A Portcullis core for benchmarking, set up the way `portcullis start` sets one up: embedded
 * stores (SQLite in a fresh data directory, replay protection in process memory), silent logs,
 * and one HMAC key allowed the benchmark routes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Portcullis, initDataDir, openDataDir, parseCreateKeyInput } from "../packages/portcullis/dist/index.js";
import { silentLogger } from "../packages/portcullis/dist/log/logger.js";
import { ROUTES, SCOPES } from "./signing.js";

/**
 * Builds a core in a temporary data directory and creates one key. `now` is the core's clock
 * (default: real time); `timing` turns on per-stage timings. Resolves to
 * `{ core, keyId, secret, close }`; `close` shuts the core down and deletes the directory.
 */
export async function createBenchCore({ now = Date.now, timing = false } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "portcullis-bench-"));
  try {
    await initDataDir(dataDir, "live");
    const data = await openDataDir(dataDir);
    const core = new Portcullis({
      store: data.store,
      envelope: data.envelope,
      environment: data.environment,
      routes: ROUTES,
      timing,
      now,
      logger: silentLogger(),
    });
    const created = await core.keys.create(parseCreateKeyInput({ account: "bench", scopes: SCOPES }, now()), "bench");
    return {
      core,
      keyId: created.key.id,
      secret: created.secret,
      async close() {
        await core.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}
