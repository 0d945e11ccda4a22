/**
 * A private PostgreSQL server for the PostgreSQL benchmarks (18: cold-key lookups), made with the
 * machine's own binaries (`initdb`, `postgres`) in a temporary directory on a free loopback port,
 * trust authentication, and deleted afterwards. Private because the benchmark must restart the
 * server (to empty its shared buffers) and evict its files from the OS page cache (for a
 * first-touch figure), neither of which may be done to a server other programs are using.
 *
 * The binaries are looked for in PORTCULLIS_BENCH_PG_BIN, then in /usr/lib/postgresql/<newest>/bin.
 * initdb and postgres refuse to run as root: run as root, the server runs as the `postgres` user
 * (or PORTCULLIS_BENCH_PG_USER), its directory handed to that user.
 */
import { execFile, spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import pg from "pg";

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

/** The directory holding initdb and postgres, or null when none is found. */
export function postgresBinDir() {
  const env = process.env.PORTCULLIS_BENCH_PG_BIN;
  if (env !== undefined && env !== "") return existsSync(join(env, "postgres")) ? env : null;
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, "bin", "initdb")) && existsSync(join(root, v, "bin", "postgres")))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length === 0 ? null : join(root, versions[0], "bin");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function run(file, args, options) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 120_000, maxBuffer: 4 * 1024 * 1024, ...options }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${file} ${args.join(" ")}: ${err.message} ${String(stderr).slice(-500)}`));
      else resolve(String(stdout));
    });
  });
}

/** The uid/gid the server runs as: ours, unless we are root (then the postgres user's). */
async function serverUser() {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return null;
  const name = process.env.PORTCULLIS_BENCH_PG_USER ?? "postgres";
  const uid = Number((await run("id", ["-u", name])).trim());
  const gid = Number((await run("id", ["-g", name])).trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid === 0) throw new Error(`cannot run PostgreSQL as root, and no user ${name} to run it as`);
  return { uid, gid };
}

/** Gives every file under `dir` (and `dir`) to `user`. */
function chownTree(dir, user) {
  chownSync(dir, user.uid, user.gid);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) chownTree(path, user);
    else chownSync(path, user.uid, user.gid);
  }
}

/**
 * Starts a private PostgreSQL. Resolves to `{ url, port, dataDir, version, pid, restart, stop,
 * relationFiles, evict }`:
 *
 * - `restart()` stops the server (a clean shutdown: a checkpoint, so every page is on disk) and
 *   starts it again: its shared buffers are then empty;
 * - `relationFiles(relfilepaths)` lists the files of relations (`pg_relation_filepath` answers,
 *   relative to the data directory), segments included;
 * - `evict(files)` asks the kernel to drop those files' pages from its page cache
 *   (posix_fadvise DONTNEED, through GNU dd's `iflag=nocache`) and answers the share of their
 *   pages still cached afterwards (util-linux `fincore`), so a caller can say how cold they were;
 * - `stop()` stops the server and deletes its directory.
 *
 * `settings` are extra `-c name=value` server settings.
 */
export async function startPrivatePostgres({ settings = {} } = {}) {
  const bin = postgresBinDir();
  if (bin === null) throw new Error("no PostgreSQL server binaries (initdb, postgres) found: install postgresql, or set PORTCULLIS_BENCH_PG_BIN");
  const user = await serverUser();
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-pg-"));
  const dataDir = join(dir, "data");
  const port = await freePort();
  const ids = user === null ? {} : { uid: user.uid, gid: user.gid };
  if (user !== null) chownTree(dir, user);
  let child = null;
  const args = ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", `unix_socket_directories=${dir}`, "-c", "logging_collector=off"];
  for (const [name, value] of Object.entries(settings)) args.push("-c", `${name}=${value}`);

  const startServer = async () => {
    let log = "";
    const started = spawn(join(bin, "postgres"), args, { ...ids, stdio: ["ignore", "pipe", "pipe"] });
    started.stdout.on("data", (c) => (log += c.toString("utf8")));
    started.stderr.on("data", (c) => (log += c.toString("utf8")));
    child = started;
    const until = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (started.exitCode !== null || started.signalCode !== null) throw new Error(`postgres exited before it was ready: ${log.slice(-800)}`);
      const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres", connectionTimeoutMillis: 1_000 });
      client.on("error", () => undefined);
      try {
        await client.connect();
        await client.query("SELECT 1");
        await client.end();
        return;
      } catch {
        await client.end().catch(() => undefined);
      }
      if (Date.now() > until) throw new Error(`postgres: not ready after ${START_TIMEOUT_MS} ms: ${log.slice(-800)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const stopServer = async () => {
    const running = child;
    child = null;
    if (running === null || running.exitCode !== null || running.signalCode !== null) return;
    await new Promise((resolve) => {
      const timer = setTimeout(() => running.kill("SIGKILL"), STOP_TIMEOUT_MS);
      running.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      // SIGINT: "fast" shutdown — sessions ended, then a shutdown checkpoint.
      running.kill("SIGINT");
    });
  };
  const stop = async () => {
    await stopServer();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await run(join(bin, "initdb"), ["-D", dataDir, "-U", "postgres", "--auth=trust", "--no-instructions", "-E", "UTF8", "--locale=C"], ids);
    await startServer();
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const version = (await client.query("SHOW server_version")).rows[0].server_version;
    await client.end();
    return {
      url,
      port,
      dataDir,
      version,
      /** The postmaster's pid now (it changes with a restart): its descendants are the server's processes. */
      pid() {
        return child === null ? null : child.pid;
      },
      async restart() {
        await stopServer();
        await startServer();
      },
      relationFiles(relativePaths) {
        const out = [];
        for (const rel of relativePaths) {
          const base = join(dataDir, rel);
          for (let seg = 0; ; seg++) {
            const file = seg === 0 ? base : `${base}.${seg}`;
            if (!existsSync(file)) break;
            out.push(file);
          }
        }
        return out;
      },
      async evict(files) {
        // Dirty pages cannot be dropped: write them back first (sync FILE… fsyncs those files).
        if (files.length > 0) await run("sync", files);
        for (const file of files) await run("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"]);
        return cachedShare(files);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The share (0..1) of these files' pages in the kernel's page cache, from util-linux `fincore`
 * (`--bytes --noheadings --output RES,SIZE`); null when fincore is not there.
 */
export async function cachedShare(files) {
  if (files.length === 0) return 0;
  let text;
  try {
    text = await run("fincore", ["--bytes", "--noheadings", "--output", "RES,SIZE", ...files]);
  } catch {
    return null;
  }
  let resident = 0;
  let size = 0;
  for (const line of text.trim().split("\n")) {
    const [res, total] = line.trim().split(/\s+/).map(Number);
    if (Number.isFinite(res) && Number.isFinite(total)) {
      resident += res;
      size += total;
    }
  }
  if (size === 0) size = files.reduce((n, f) => n + statSync(f).size, 0);
  return size === 0 ? 0 : resident / size;
}
