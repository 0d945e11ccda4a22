import type { Command } from "commander";
import { resolve } from "node:path";
import { loadConfig } from "../config/config.js";
import { writeBackup, restoreBackup, type RestoreResult } from "../custody/backup.js";
import { restorePostgresBackup, writePostgresBackup } from "../custody/backup-postgres.js";
import { type CustodyConfig, DEFAULT_CUSTODY } from "../custody/config.js";
import { CustodyError } from "../custody/errors.js";
import { PortcullisError } from "../errors/catalogue.js";
import type { KekProvider } from "../custody/keyring.js";
import { openKekProvider } from "../custody/open.js";
import { custodyStatus, rotateKek, type CustodyStatus, type RotationResult } from "../custody/rotation.js";
import { DataDirError, initDataDir, openDataDir } from "../core/data-dir.js";
import { type StoreSettings, StoreSettingsError, describeStore, readStoreFile, sameStore } from "../storage/location.js";
import { print } from "./target.js";
import { DEFAULT_SEALING, HpkeKeyring, type SealingSettings } from "../custody/hpke.js";

/**
 * The key-custody commands:
 *
 *   portcullis custody status [--data DIR | --config FILE] [--json]
 *   portcullis custody rotate [--data DIR | --config FILE] [--keep-old] [--settle MS] [--json]
 *   portcullis backup  --out FILE [--data DIR | --config FILE] [--json]
 *   portcullis restore --in FILE  [--data DIR | --config FILE] [--force] [--json]
 *   portcullis sealing status [--data DIR | --config FILE] [--json]
 *   portcullis sealing rotate [--data DIR | --config FILE] [--json]
 *
 * With --config the data directory and the custody provider come from the config file (needed
 * for a PKCS#11 deployment: module, token, PIN); with --data the keyring file is the provider.
 */

interface Target {
  data?: string;
  config?: string;
  json?: boolean;
}

function targetOf(opts: Target, defaultData: string): { dataDir: string; custody: CustodyConfig; store: StoreSettings | undefined } {
  if (opts.config !== undefined) {
    const config = loadConfig(opts.config);
    return { dataDir: config.dataDir, custody: config.custody, store: config.store };
  }
  return { dataDir: resolve(opts.data ?? defaultData), custody: DEFAULT_CUSTODY, store: undefined };
}

/**
 * The store a backup is taken from or restored into: the data directory's (store.json; SQLite
 * without one), which the configuration's, when given, must name too (as openDataDir checks).
 */
function storeOfTarget(dataDir: string, configured: StoreSettings | undefined): StoreSettings {
  let recorded: StoreSettings;
  try {
    recorded = readStoreFile(dataDir);
  } catch (err) {
    if (err instanceof StoreSettingsError) throw new DataDirError(err.message);
    throw err;
  }
  if (configured !== undefined && !sameStore(configured, recorded)) {
    throw new DataDirError(`the configuration's store is ${describeStore(configured)}, but ${dataDir} keeps its store in ${describeStore(recorded)}: make config.store name the data directory's store`);
  }
  return recorded;
}

function withTarget(cmd: Command): Command {
  return cmd
    .option("--data <dir>", "data directory, with its keyring file (default $PORTCULLIS_DATA or ./portcullis-data)")
    .option("--config <file>", "the gateway's config file: its data directory and custody provider (PKCS#11)")
    .option("--json", "print JSON");
}

function describeStatus(s: CustodyStatus): string {
  const details = Object.entries(s.details)
    .filter(([k]) => k !== "provider")
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  const lines = [
    `provider        ${s.provider}${details === "" ? "" : ` (${details})`}`,
    `active KEK      version ${s.activeVersion}`,
    `KEK versions    ${s.versions.join(", ")}`,
    `envelopes       ${s.envelopes.total}${Object.keys(s.envelopes.byVersion).length === 0 ? "" : ` (${Object.entries(s.envelopes.byVersion).map(([v, n]) => `v${v}: ${n}`).join(", ")})`}`,
    `  by kind       ${Object.entries(s.envelopes.byKind).map(([k, n]) => `${k} ${n}`).join(", ")}`,
    `signing keys    ${s.signingKeys.length === 0 ? "none yet" : s.signingKeys.map((k) => `${k.purpose} (${k.provider}, ${k.kid})`).join(", ")}`,
  ];
  if (s.kekFloor > 0) lines.push(`KEK floor       version ${s.kekFloor} (the store's: no envelope is written under an older one)`);
  if (s.envelopes.missingVersions.length > 0) lines.push(`MISSING         KEK version(s) ${s.envelopes.missingVersions.join(", ")}: those envelopes cannot be opened here`);
  for (const warning of s.warnings) lines.push(`WARNING         ${warning}`);
  if (s.envelopes.malformed > 0) lines.push(`malformed       ${s.envelopes.malformed}`);
  if (s.clearPassphrases > 0) lines.push(`clear passphrase hashes ${s.clearPassphrases} (sealed at the next open)`);
  return lines.join("\n");
}

function describeRotation(r: RotationResult): string {
  const lines = [
    `rotated the ${r.provider} KEK: version ${r.active} is active`,
    `  rewrapped ${r.rewrapped} envelope(s) in ${r.passes} pass(es), ${r.durationMs} ms`,
    r.retired.length > 0 ? `  retired version(s) ${r.retired.join(", ")}` : "  no version retired",
  ];
  if (r.sealedPassphrases > 0) lines.push(`  sealed ${r.sealedPassphrases} clear passphrase hash(es)`);
  for (const f of r.failures) lines.push(`  could not rewrap ${f.where} (${f.code})`);
  return lines.join("\n");
}

/** The HPKE keys of sealed orders as `sealing status` prints them (docs/sealed-orders.md). */
interface SealingStatus {
  readonly rotateMs: number;
  readonly graceMs: number;
  readonly keys: readonly { readonly id: string; readonly generation: number; readonly publicKey: string; readonly createdAt: number; readonly notAfter: number }[];
}

function describeSealing(s: SealingStatus, now: number): string {
  const lines = [`rotate every ${String(s.rotateMs / 60_000)} min, previous key accepted ${String(s.graceMs / 60_000)} min after`];
  if (s.keys.length === 0) lines.push("no HPKE key yet (the gateway makes one when it starts)");
  for (const [i, k] of s.keys.entries()) {
    const state = i === 0 && now < k.notAfter ? "current" : "previous";
    lines.push(`${k.id}  generation ${String(k.generation)}  ${state}  created ${new Date(k.createdAt).toISOString()}  notAfter ${new Date(k.notAfter).toISOString()}`);
  }
  return lines.join("\n");
}

/** Adds `custody status|rotate`, `backup`, `restore` and `sealing status|rotate` to the program. */
export function registerCustodyCommands(program: Command, defaultData: string): void {
  const sealing = program.command("sealing").description("the gateway's HPKE keys for sealed orders (docs/sealed-orders.md)");
  const sealingSettings = (opts: Target): SealingSettings => (opts.config === undefined ? DEFAULT_SEALING : loadConfig(opts.config).sealing);
  const sealingStatus = async (keyring: HpkeKeyring, store: { live(): Promise<{ id: string; generation: number; publicKey: string; createdAt: number; notAfter: number }[]> }): Promise<SealingStatus> => ({
    rotateMs: keyring.rotateMs,
    graceMs: keyring.graceMs,
    keys: (await store.live()).map((k) => ({ id: k.id, generation: k.generation, publicKey: k.publicKey, createdAt: k.createdAt, notAfter: k.notAfter })),
  });
  for (const [name, description, rotate] of [
    ["status", "the live HPKE keys (current first), their generations and when each stops being current", false],
    ["rotate", "make the next HPKE key now; the previous one is accepted for sealing.grace more", true],
  ] as const) {
    withTarget(sealing.command(name).description(description)).action(async (opts: Target) => {
      const { dataDir, custody: config } = targetOf(opts, defaultData);
      const settings = sealingSettings(opts);
      const data = await openDataDir(dataDir, { custody: config });
      try {
        const keyring = new HpkeKeyring({ store: data.store.hpke, envelope: data.envelope, rotateMs: settings.rotateMs, graceMs: settings.graceMs });
        if (rotate) await keyring.rotate();
        const status = await sealingStatus(keyring, data.store.hpke);
        print(opts.json === true, status, () => describeSealing(status, Date.now()));
      } finally {
        await data.close();
      }
    });
  }

  const custody = program.command("custody").description("key custody: the KEK provider, rotation and status");

  withTarget(custody.command("status").description("the KEK provider, its active version, and how many envelopes each KEK version holds")).action(
    async (opts: Target) => {
      const { dataDir, custody: config } = targetOf(opts, defaultData);
      const data = await openDataDir(dataDir, { custody: config });
      try {
        const status = await custodyStatus(data.store, data.envelope);
        print(opts.json === true, status, () => describeStatus(status));
        // A host whose KEK provider cannot serve the store is a failure a monitor must see.
        if (status.warnings.length > 0) process.exitCode = 1;
      } finally {
        await data.close();
      }
    },
  );

  withTarget(
    custody
      .command("rotate")
      .description("create a new KEK version, rewrap every stored data key under it (online), and retire the old versions")
      .option("--keep-old", "keep the old KEK versions (e.g. to restore older backups) instead of retiring them")
      .option("--settle <ms>", "pause before the final pass, for wraps already under way in other processes (default 2000)"),
  ).action(async (opts: Target & { keepOld?: boolean; settle?: string }) => {
    const settleMs = opts.settle === undefined ? 2_000 : Number(opts.settle);
    if (!Number.isInteger(settleMs) || settleMs < 0 || settleMs > 60_000) throw new PortcullisError("VALIDATION_FAILED", "--settle must be 0-60000 ms");
    const { dataDir, custody: config } = targetOf(opts, defaultData);
    const data = await openDataDir(dataDir, { custody: config });
    try {
      const result = await rotateKek(dataDir, data.store, data.envelope, { settleMs, retire: opts.keepOld !== true });
      print(opts.json === true, result, () => describeRotation(result));
      if (result.failures.length > 0) process.exitCode = 1;
    } finally {
      await data.close();
    }
  });

  withTarget(
    program
      .command("backup")
      .description("write an encrypted export of the durable store (restorable only with this deployment's KEK)")
      .requiredOption("--out <file>", "the backup file to create (mode 0600; never overwritten)"),
  ).action(async (opts: Target & { out: string }) => {
    const { dataDir, custody: config, store: configured } = targetOf(opts, defaultData);
    const settings = storeOfTarget(dataDir, configured);
    const data = await openDataDir(dataDir, { custody: config, ...(configured === undefined ? {} : { store: configured }) });
    try {
      const out = resolve(opts.out);
      const result =
        data.store.kind === "sqlite"
          ? await writeBackup({ dataDir, store: data.store, kek: data.kek, environment: data.environment, out })
          : settings.backend === "postgres"
            ? await writePostgresBackup({ url: settings.url, schema: settings.schema, kek: data.kek, environment: data.environment, out })
            : null;
      if (result === null) throw new CustodyError("BACKUP_UNSUPPORTED", `${dataDir}'s store is neither SQLite nor PostgreSQL`);
      print(opts.json === true, { file: result.file, size: result.size, header: result.header }, () =>
        `backup written to ${result.file} (${result.size} bytes; ${result.header.provider} KEK version ${result.header.kekVersion})`,
      );
    } finally {
      await data.close();
    }
  });

  withTarget(
    program
      .command("restore")
      .description("restore an encrypted backup into a data directory that holds the same KEK (stop the gateway first)")
      .requiredOption("--in <file>", "the backup file")
      .option("--force", "replace a database that already holds keys"),
  ).action(async (opts: Target & { in: string; force?: boolean }) => {
    const { dataDir, custody: config, store: configured } = targetOf(opts, defaultData);
    const settings = storeOfTarget(dataDir, configured);
    let kek: KekProvider;
    try {
      kek = await openKekProvider(dataDir, config);
    } catch (err) {
      if (err instanceof CustodyError && err.code === "KEYRING_MISSING") {
        throw new CustodyError("KEYRING_MISSING", `${dataDir} has no keyring: a backup restores only with its KEK, so put the keyring.json it was made with there first (mode 0600), or use --config for an HSM`);
      }
      throw err;
    }
    try {
      const file = resolve(opts.in);
      const force = opts.force === true;
      const result: RestoreResult =
        settings.backend === "postgres"
          ? await restorePostgresBackup({ file, dataDir, url: settings.url, schema: settings.schema, kek, force })
          : await restoreBackup({ file, dataDir, kek, force });
      const env = result.header.environment === "test" ? "test" : "live";
      await initDataDir(dataDir, env);
      print(opts.json === true, { dataDir, keys: result.keys, replaced: result.replaced, carried: result.carried, carriedHolds: result.carriedHolds, carriedSpend: result.carriedSpend, header: result.header }, () =>
        [
          `restored ${result.keys} key(s) into ${dataDir}${settings.backend === "postgres" ? ` (${describeStore(settings)})` : ""} from the backup of ${result.header.createdAt}${result.replaced ? " (the previous database was replaced)" : ""}`,
          ...(result.carriedHolds !== null && result.carriedHolds > 0
            ? [`${result.carriedHolds} held operation(s) keep the later state the replaced database recorded (claimed, released or ended): none is sent again`]
            : []),
          ...(result.replaced && result.carried === null
            ? ["warning: the replaced database's replay state could not be read: rotate the keys that sign with increasing nonces (Kraken)"]
            : []),
          ...(result.replaced && (result.carriedHolds === null || result.carriedSpend === null)
            ? ["warning: the replaced database's held operations or velocity ledger could not be read: check that no released operation is pending or ready again (approvals list), and that the policy's caps count what was spent since the backup"]
            : []),
        ].join("\n"),
      );
    } finally {
      await kek.close();
    }
  });
}
