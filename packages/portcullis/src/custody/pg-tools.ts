import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { accessSync, constants, readdirSync } from "node:fs";
import { delimiter, join } from "node:path";
import { CustodyError } from "./errors.js";

/**
 * PostgreSQL's own client programs (pg_dump, pg_restore), which a PostgreSQL store's backups are
 * made with: the custom format is PostgreSQL's, restorable by any later pg_restore, and consistent
 * (pg_dump reads in one snapshot while the gateway keeps writing).
 *
 * The password is never on a command line (another user's `ps` shows it): a URL never holds one
 * (storage/location.ts refuses it), and should one be given in code it is moved into PGPASSWORD for
 * the child. PGPASSWORD, PGPASSFILE and ~/.pgpass are inherited.
 */
export type PgTool = "pg_dump" | "pg_restore";

/** Where a program is: on PATH, else the newest of /usr/lib/postgresql/<major>/bin (Debian's layout); null when neither has it. */
export function findPgTool(name: PgTool, path = process.env.PATH ?? "", versionsRoot = "/usr/lib/postgresql"): string | null {
  const executable = (file: string): boolean => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  for (const dir of path.split(delimiter)) {
    if (dir !== "" && executable(join(dir, name))) return join(dir, name);
  }
  let majors: string[];
  try {
    majors = readdirSync(versionsRoot).filter((d) => /^\d+$/.test(d));
  } catch {
    return null;
  }
  for (const major of majors.sort((a, b) => Number(b) - Number(a))) {
    if (executable(join(versionsRoot, major, "bin", name))) return join(versionsRoot, major, "bin", name);
  }
  return null;
}

/** A program, or BACKUP_UNSUPPORTED saying how to get it. `search`: where to look instead of PATH and /usr/lib/postgresql (tests). */
export function requirePgTool(name: PgTool, what: string, search?: { readonly path: string; readonly versionsRoot: string }): string {
  const found = search === undefined ? findPgTool(name) : findPgTool(name, search.path, search.versionsRoot);
  if (found === null) {
    throw new CustodyError(
      "BACKUP_UNSUPPORTED",
      `${what} needs ${name}, which is neither on PATH nor in /usr/lib/postgresql/*/bin: install the PostgreSQL client programs of the server's major version or newer (Debian: postgresql-client)`,
    );
  }
  return found;
}

/** The version a program reports ("15.20"), or "unknown". */
export function pgToolVersion(tool: string): string {
  try {
    const text = execFileSync(tool, ["--version"], { encoding: "utf8", timeout: 10_000 });
    return /(\d+(?:\.\d+)+)/.exec(text)?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** A URL for a child's command line (no password) and the environment that carries the password, if the URL had one. */
export function childConnection(url: string, database?: string): { url: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url);
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (u.password !== "") {
    env.PGPASSWORD = decodeURIComponent(u.password);
    u.password = "";
  }
  if (database !== undefined) u.pathname = `/${database}`;
  return { url: u.toString(), env };
}

/** user@host:port/database, for headers and messages. */
export function serverOf(url: string): string {
  const u = new URL(url);
  return `${decodeURIComponent(u.username)}@${u.hostname}:${u.port === "" ? "5432" : u.port}${u.pathname}`;
}

const STDERR_KEPT = 4096;

/** A running program: its stdio, and its end (rejects with BACKUP_TOOL_FAILED and the last lines it printed). */
export interface PgRun {
  readonly child: ChildProcess;
  readonly done: Promise<void>;
}

/** Starts `tool` with `args` (stdin/stdout piped); its stderr is kept (the last 4 KiB) for the failure's message. */
export function runPgTool(tool: string, args: readonly string[], env: NodeJS.ProcessEnv, label: string): PgRun {
  const child = spawn(tool, args, { env, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    stderr = (stderr + text).slice(-STDERR_KEPT);
  });
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", (err) => {
      reject(new CustodyError("BACKUP_TOOL_FAILED", `${label}: cannot run ${tool}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else {
        const said = stderr.trim().split("\n").slice(-5).join(" | ");
        reject(new CustodyError("BACKUP_TOOL_FAILED", `${label} failed (${signal ?? `exit ${String(code)}`})${said === "" ? "" : `: ${said}`}`));
      }
    });
  });
  // A caller that gives up early must not leave an unhandled rejection behind.
  done.catch(() => undefined);
  return { child, done };
}
