import { spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./redis.js";

/**
 * A private PostgreSQL server for tests that stop, kill and start their database (test/failures/):
 * `initdb` into a temporary directory, trust authentication, a free port on 127.0.0.1 and a
 * socket directory of its own, so nothing it does touches the shared server on 5432 that the
 * contract suites use.
 *
 * PostgreSQL refuses to run as root; when the tests do (this machine's CI), every PostgreSQL
 * program runs as the `postgres` user (`runuser -u postgres --`) in a directory it owns. The
 * binaries are found on PATH, else in /usr/lib/postgresql/<newest>/bin.
 *
 * `stop()` is a fast shutdown (clients are disconnected, the server exits cleanly), `kill()` is
 * `kill -9` of the postmaster and its backends (crash recovery on the next start), `start()` brings
 * the same data back on the same port. `cleanup()` removes everything; a server still running
 * when the test process exits is stopped then too, so a failed test leaves nothing behind.
 */

/** Every private server still to be cleaned up, stopped when the process exits. */
const alive = new Set<PrivatePostgres>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const server of alive) server.cleanupSync();
  });
}

/** The directory holding initdb, pg_ctl and postgres, or null when PostgreSQL is not installed. */
export function postgresBinDir(): string | null {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir !== "" && existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl"))) return dir;
  }
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const dir = join(root, v, "bin");
    if (existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl"))) return dir;
  }
  return null;
}

interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

/** As root, the `postgres` user's ids (PostgreSQL will not run as root); otherwise null (ourselves). */
function runAs(): RunAs | null {
  if (process.getuid?.() !== 0) return null;
  const r = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
  const g = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
  if (r.status !== 0 || g.status !== 0) throw new Error("running as root, but there is no postgres user to run PostgreSQL as");
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

export class PrivatePostgres {
  private running = false;
  private removed = false;

  private constructor(
    /** The temporary directory: data, socket and log. */
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
    private readonly user: RunAs | null,
  ) {}

  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  get dataDir(): string {
    return join(this.dir, "data");
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** True when this machine can run a private PostgreSQL (its binaries are installed). */
  static available(): boolean {
    return postgresBinDir() !== null;
  }

  /** initdb into a new temporary directory, then start on a free port; resolves once it accepts connections. */
  static async create(): Promise<PrivatePostgres> {
    const bin = postgresBinDir();
    if (bin === null) throw new Error("PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin)");
    const user = runAs();
    const dir = mkdtempSync(join(tmpdir(), "pctest-pg-"));
    if (user !== null) chownSync(dir, user.uid, user.gid);
    const server = new PrivatePostgres(dir, await freePort(), bin, user);
    alive.add(server);
    installExitHook();
    try {
      // --no-sync: a test cluster need not survive a power cut; trust: no passwords in tests.
      server.run("initdb", ["-D", server.dataDir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"]);
      await server.start();
      return server;
    } catch (err) {
      server.cleanupSync();
      throw err;
    }
  }

  /** Runs a PostgreSQL program (as the postgres user when we are root); throws with its output on failure. */
  private run(program: string, args: readonly string[], timeoutMs = 60_000): string {
    const path = join(this.bin, program);
    const [command, argv] = this.user === null ? [path, [...args]] : ["runuser", ["-u", "postgres", "--", path, ...args]];
    const r = spawnSync(command, argv, { encoding: "utf8", timeout: timeoutMs, cwd: this.dir });
    if (r.status !== 0) throw new Error(`${program} ${args.join(" ")} failed (${String(r.status ?? r.signal)}): ${r.stdout}${r.stderr}${r.error === undefined ? "" : r.error.message}`);
    return r.stdout;
  }

  /** Starts the server on its port with its data (again, after `stop` or `kill`); resolves when it accepts connections. */
  start(): Promise<void> {
    if (this.removed) return Promise.reject(new Error("this private PostgreSQL was cleaned up"));
    if (this.running) return Promise.resolve();
    // fsync off: a killed postmaster still recovers from its WAL (the kernel has the pages); only a
    // power cut would lose them, which no test makes.
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -k ${this.dir} -c fsync=off -c full_page_writes=off -c max_connections=100`;
    const log = join(this.dir, "server.log");
    try {
      this.run("pg_ctl", ["start", "-D", this.dataDir, "-w", "-t", "60", "-l", log, "-o", options]);
    } catch (err) {
      const tail = existsSync(log) ? readFileSync(log, "utf8").slice(-2_000) : "(no log)";
      throw new Error(`${(err as Error).message}\nserver.log:\n${tail}`, { cause: err });
    }
    this.running = true;
    return Promise.resolve();
  }

  /** A fast shutdown: open connections are terminated, the server exits cleanly. */
  stop(): Promise<void> {
    if (!this.running) return Promise.resolve();
    this.run("pg_ctl", ["stop", "-D", this.dataDir, "-m", "fast", "-w", "-t", "60"]);
    this.running = false;
    return Promise.resolve();
  }

  /** Stops and starts again on the same port and data. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** The postmaster's pid (postmaster.pid's first line), or null when it is not running. */
  private postmasterPid(): number | null {
    const file = join(this.dataDir, "postmaster.pid");
    if (!existsSync(file)) return null;
    const pid = Number(readFileSync(file, "utf8").split("\n")[0]);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  }

  /** The postmaster and every process it started (its backends and auxiliary processes). */
  private processTree(): number[] {
    const root = this.postmasterPid();
    if (root === null) return [];
    const children: number[] = [];
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so read after the last ")".
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        if (ppid === root) children.push(Number(entry));
      } catch {
        // It exited meanwhile.
      }
    }
    return [root, ...children];
  }

  /**
   * `kill -9`: the postmaster and its backends die at once, without a shutdown (clients see their
   * connections reset). The next `start()` runs crash recovery.
   */
  async kill(): Promise<void> {
    if (!this.running) return;
    const pids = this.processTree();
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    const deadline = Date.now() + 10_000;
    while (pids.some((pid) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z "))) {
      if (Date.now() > deadline) throw new Error("the killed PostgreSQL processes did not exit");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // A killed postmaster may stay a zombie until this container's init reaps it, and PostgreSQL
    // takes a pid that still exists for a live server: the lock files are removed here (every
    // process of the server is dead, so it is stale).
    rmSync(join(this.dataDir, "postmaster.pid"), { force: true });
    rmSync(join(this.dir, `.s.PGSQL.${this.port}.lock`), { force: true });
    rmSync(join(this.dir, `.s.PGSQL.${this.port}`), { force: true });
    this.running = false;
  }

  /**
   * SIGSTOP (`freeze`) / SIGCONT (`thaw`) to the postmaster and its backends: a server that still
   * holds its connections open but answers nothing, as a hung host or a network partition looks.
   */
  freeze(): void {
    this.signalTree("SIGSTOP");
  }

  thaw(): void {
    this.signalTree("SIGCONT");
  }

  private signalTree(signal: NodeJS.Signals): void {
    for (const pid of this.processTree()) {
      try {
        process.kill(pid, signal);
      } catch {
        // A backend that exited since the tree was read.
      }
    }
  }

  /** Stops the server (immediately) and removes its directory. */
  cleanup(): Promise<void> {
    this.cleanupSync();
    return Promise.resolve();
  }

  /** As `cleanup`, synchronously (the process's exit hook). */
  cleanupSync(): void {
    if (this.removed) return;
    this.removed = true;
    alive.delete(this);
    // Only a server this object knows to be running: after kill() the pid file is stale, and its pid
    // may since belong to another process.
    if (this.running) {
      this.thaw();
      try {
        this.run("pg_ctl", ["stop", "-D", this.dataDir, "-m", "immediate", "-w", "-t", "30"]);
      } catch {
        for (const pid of this.processTree()) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // Already gone.
          }
        }
      }
    }
    this.running = false;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
