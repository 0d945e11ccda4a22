import type { Command } from "commander";
import { PortcullisError } from "../errors/catalogue.js";

/**
 * Where an operator command acts, and how it answers: on a data directory directly (`--data`,
 * with the gateway's `--config` where the command reads it), or through a running admin API
 * (`--admin`, signed with an admin key from the options or, better, the environment); `--json`
 * prints JSON. The commands of the policy, approvals, anomalies and risk profiles share it.
 */
export interface AdminTarget {
  data?: string;
  config?: string;
  admin?: string;
  adminKeyId?: string;
  adminSecret?: string;
  json?: boolean;
}

/** What a command does, over a data directory or an admin API alike; closed once it is done. */
export interface Closeable {
  close(): Promise<void>;
}

/**
 * Runs `fn` over the target's operations — `remote` through the admin API at `--admin`, signed with
 * the admin key (refused when none is given: `who` says which key the command needs), else `local`
 * on the data directory — and closes them afterwards.
 */
export async function withTarget<O extends Closeable, T>(
  opts: AdminTarget,
  who: string,
  remote: (url: string, keyId: string, secret: string) => O,
  local: () => Promise<O>,
  fn: (ops: O) => Promise<T>,
): Promise<T> {
  let ops: O;
  if (opts.admin !== undefined) {
    const keyId = opts.adminKeyId ?? process.env.PORTCULLIS_ADMIN_KEY_ID;
    const secret = opts.adminSecret ?? process.env.PORTCULLIS_ADMIN_SECRET;
    if (keyId === undefined || secret === undefined) {
      throw new PortcullisError("VALIDATION_FAILED", `--admin needs ${who}: set PORTCULLIS_ADMIN_KEY_ID and PORTCULLIS_ADMIN_SECRET (or --admin-key-id / --admin-secret)`);
    }
    ops = remote(opts.admin, keyId, secret);
  } else {
    ops = await local();
  }
  try {
    return await fn(ops);
  } finally {
    await ops.close();
  }
}

/**
 * Adds the target's options to `cmd`: `--data`, `--config` when the command reads the gateway's
 * configuration (`config` says what for), `--admin` (`who`: the key it signs with), the admin key's
 * id and secret, and `--json`.
 */
export function targetOptions(cmd: Command, who: string, config?: string): Command {
  cmd.option("--data <dir>", "data directory to operate on directly (default $PORTCULLIS_DATA or ./portcullis-data)");
  if (config !== undefined) cmd.option("--config <file>", config);
  return cmd
    .option("--admin <url>", `operate through a running admin API instead (${who} from $PORTCULLIS_ADMIN_KEY_ID / $PORTCULLIS_ADMIN_SECRET)`)
    .option("--admin-key-id <id>", "admin key id (prefer $PORTCULLIS_ADMIN_KEY_ID)")
    .option("--admin-secret <secret>", "admin key secret (prefer $PORTCULLIS_ADMIN_SECRET: arguments are visible to other users)")
    .option("--json", "print JSON");
}

/** Prints a command's answer: JSON with `--json`, else the human form. */
export function print(json: boolean | undefined, data: unknown, human: () => string): void {
  process.stdout.write(json === true ? `${JSON.stringify(data)}\n` : `${human()}\n`);
}
