import { OperatorError } from "../errors/catalogue.js";
import { randomBytes } from "node:crypto";
import { closeSync, constants, existsSync, fstatSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CustodyConfig } from "../custody/config.js";
import { CustodyError } from "../custody/errors.js";
import type { Envelope } from "../custody/envelope.js";
import type { Environment } from "../contract/ids.js";
import { KeyringFileProvider, type KekProvider } from "../custody/keyring.js";
import { type Custody, openCustody } from "../custody/open.js";
import type { SigningKeyProvider } from "../contract/signing.js";
import { SqliteStore } from "../storage/sqlite/store.js";
import { PostgresStore } from "../storage/postgres/store.js";
import { type StoreSettings, STORE_FILE, StoreSettingsError, describeStore, readStoreFile, sameStore, writeStoreFile } from "../storage/location.js";

/**
 * The embedded data directory, as `portcullis init` lays it out:
 *
 *   keyring.json      the key-encryption key(s), mode 0600
 *   identity.secret   the gateway-upstream secret for identity headers, mode 0600
 *   portcullis.db     SQLite (WAL): keys and their change feed; secrets envelope-encrypted
 *   store.json        instead of portcullis.db, where the PostgreSQL store is (storage/location.ts)
 *
 * The directory itself is created with mode 0700.
 */
export const DATA_FILES = {
  keyring: "keyring.json",
  identitySecret: "identity.secret",
  database: "portcullis.db",
  store: STORE_FILE,
} as const;

/** The data directory cannot be used (DATA_DIR_INVALID): the message says what to run or fix. */
export class DataDirError extends OperatorError<"DATA_DIR_INVALID"> {
  override name = "DataDirError";

  constructor(message: string) {
    super("DATA_DIR_INVALID", message);
  }
}

function writeSecretFile(path: string, content: string): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    writeFileSync(fd, content);
  } finally {
    closeSync(fd);
  }
}

export interface InitResult {
  readonly dataDir: string;
  readonly environment: Environment;
  readonly created: readonly string[];
}

/**
 * Creates whatever of the data directory is missing; never overwrites an existing secret. The
 * environment (live or test) is fixed at the first init: keys issued from this directory carry
 * it, and a gateway configured for the other environment refuses to start on it.
 */
export async function initDataDir(dataDir: string, environment: Environment = "live", settings?: StoreSettings): Promise<InitResult> {
  const created: string[] = [];
  if (existsSync(dataDir) && !statSync(dataDir).isDirectory()) {
    throw new DataDirError(`${dataDir} exists and is not a directory`);
  }
  const dbPath = join(dataDir, DATA_FILES.database);
  // The store is chosen by store.json or by the SQLite database: a directory with neither (a new
  // host's, holding only the deployment's keyring and identity secret) has not chosen one yet.
  const recorded = existsSync(join(dataDir, DATA_FILES.store)) || existsSync(dbPath) ? storeOf(dataDir) : undefined;
  const wanted = settings ?? recorded ?? { backend: "sqlite" };
  if (recorded !== undefined && !sameStore(recorded, wanted)) {
    throw new DataDirError(`${dataDir} already keeps its store in ${describeStore(recorded)}, not ${describeStore(wanted)}: a data directory's store is chosen once`);
  }
  if (wanted.backend === "postgres" && recorded?.backend !== "postgres" && existsSync(dbPath)) {
    throw new DataDirError(`${dataDir} already holds a SQLite store (${DATA_FILES.database}): initialise a new data directory for PostgreSQL`);
  }
  // PostgreSQL is reached (and migrated) before anything is written: a server that cannot be
  // reached leaves no half-made data directory behind.
  const store = wanted.backend === "sqlite" ? null : await PostgresStore.open({ url: wanted.url, schema: wanted.schema, poolSize: 2 });
  try {
    const keyringPath = join(dataDir, DATA_FILES.keyring);
    // A schema another data directory initialised holds secrets under that deployment's KEK. A
    // keyring made here would be another KEK: this host would start, then answer every key made
    // elsewhere KEY_STORE_UNAVAILABLE (its envelopes do not open), and the keys it made would not
    // open anywhere else. Another host joins a deployment with its files (docs/production.md).
    const existing = store === null ? undefined : await store.getMeta("environment");
    // The other environment is refused before anything is written here.
    if (existing !== undefined && existing !== environment) {
      throw new DataDirError(`${describeStore(wanted)} was initialised for the ${existing} environment, not ${environment}`);
    }
    if (store !== null && !existsSync(keyringPath) && existing !== undefined) {
      throw new DataDirError(
        `${describeStore(wanted)} is already initialised (another data directory of this deployment): copy that directory's ${DATA_FILES.keyring} and ${DATA_FILES.identitySecret} (mode 0600) into ${dataDir} first, then run init again; a new keyring here could not open the secrets stored there`,
      );
    }
    if (!existsSync(dataDir)) {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      created.push(dataDir);
    }
    if (!existsSync(keyringPath)) {
      KeyringFileProvider.create(keyringPath);
      created.push(keyringPath);
    }
    const identityPath = join(dataDir, DATA_FILES.identitySecret);
    if (!existsSync(identityPath)) {
      writeSecretFile(identityPath, `${randomBytes(32).toString("base64url")}\n`);
      created.push(identityPath);
    }
    if (wanted.backend === "postgres" && recorded?.backend !== "postgres") created.push(writeStoreFile(dataDir, wanted));
    if (wanted.backend === "sqlite" && !existsSync(dbPath)) created.push(dbPath);
    const meta = store ?? new SqliteStore(dbPath);
    try {
      const stored = await meta.initMeta("environment", environment);
      if (stored !== environment) {
        throw new DataDirError(`${dataDir} was initialised for the ${stored} environment, not ${environment}`);
      }
    } finally {
      if (store === null) await meta.close();
    }
  } finally {
    await store?.close();
  }
  return { dataDir, environment, created };
}

/** The store the data directory names (store.json; SQLite without one), or a DataDirError. */
export function storeOf(dataDir: string): StoreSettings {
  try {
    return readStoreFile(dataDir);
  } catch (err) {
    if (err instanceof StoreSettingsError) throw new DataDirError(err.message);
    throw err;
  }
}

/**
 * Reads a secret file, refusing one that group or others can read, or that holds fewer than 32
 * characters. `setting`: the configuration setting that names the file, for its errors (a file
 * `portcullis init` does not write is not its to create); absent: a file of the data directory.
 * Every problem is a DataDirError naming the file (and the setting), never its content.
 */
export function readSecretFile(path: string, setting?: string): string {
  const named = setting === undefined ? path : `${path} (${setting})`;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    if (code === "ENOENT") {
      throw new DataDirError(setting === undefined ? `missing ${path}: run \`portcullis init\` for this data directory` : `missing ${named}: write a secret of at least 32 characters to it, mode 600`);
    }
    throw new DataDirError(`cannot open ${named}: ${code}`);
  }
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new DataDirError(`${named} has mode 0${mode.toString(8)}; it must not be readable by group or others (chmod 600)`);
    }
    let text: string;
    try {
      text = readFileSync(fd, "utf8").trim();
    } catch (err) {
      throw new DataDirError(`cannot read ${named}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
    }
    if (text.length < 32) throw new DataDirError(`${named} must hold a secret of at least 32 characters`);
    return text;
  } finally {
    closeSync(fd);
  }
}

/** The durable stores a data directory can name. */
export type DataDirStore = SqliteStore | PostgresStore;

export interface OpenDataDir {
  readonly store: DataDirStore;
  /** Encrypts stored secrets under the configured KEK provider. */
  readonly envelope: Envelope;
  readonly kek: KekProvider;
  /** The gateway's own signing keys (session tokens, audit checkpoints), from the configured provider. */
  readonly signingKeys: SigningKeyProvider;
  readonly custody: Custody;
  readonly environment: Environment;
  /** Closes the database and releases the custody provider (an HSM session). */
  close(): Promise<void>;
}

export interface OpenDataDirOptions {
  /** How often other processes' commits are looked for (ms). */
  readonly pollIntervalMs?: number;
  /** Where the KEK and the signing keys live (the config's `custody` section); default the keyring file. */
  readonly custody?: CustodyConfig;
  /** The store's durable writes off the request thread (SqliteStoreOptions.offThreadWrites). Default false. */
  readonly offThreadWrites?: boolean;
  /** Told when the writer's worker thread dies. */
  readonly onWriterDeath?: (err: Error) => void;
  /**
   * The store the configuration names (its `store` section): it must be the one the data directory
   * names, else DATA_DIR_INVALID. Its pool size is used. Default: the data directory's.
   */
  readonly store?: StoreSettings;
  /** Told about PostgreSQL connection failures the store recovers from by itself. */
  readonly onStoreError?: (err: Error) => void;
}

/**
 * Opens an initialised data directory: the database, and its custody from the configured
 * provider (the keyring file, permission-checked, by default; or a PKCS#11 token).
 */
export async function openDataDir(dataDir: string, options: OpenDataDirOptions = {}): Promise<OpenDataDir> {
  if (!existsSync(join(dataDir, DATA_FILES.keyring)) && !existsSync(join(dataDir, DATA_FILES.database)) && !existsSync(join(dataDir, DATA_FILES.store))) {
    throw new DataDirError(`${dataDir} is not a Portcullis data directory: run \`portcullis init --data ${dataDir}\``);
  }
  const recorded = storeOf(dataDir);
  if (options.store !== undefined && !sameStore(options.store, recorded)) {
    throw new DataDirError(`the configuration's store is ${describeStore(options.store)}, but ${dataDir} keeps its store in ${describeStore(recorded)}: make config.store name the data directory's store`);
  }
  const settings = options.store ?? recorded;
  const store: DataDirStore =
    settings.backend === "sqlite"
      ? new SqliteStore(join(dataDir, DATA_FILES.database), {
          ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
          ...(options.offThreadWrites === undefined ? {} : { offThreadWrites: options.offThreadWrites }),
          ...(options.onWriterDeath === undefined ? {} : { onWriterDeath: options.onWriterDeath }),
        })
      : await PostgresStore.open({
          url: settings.url,
          schema: settings.schema,
          poolSize: settings.poolSize,
          audit: { spillDir: join(dataDir, "audit-spill"), archiveDir: join(dataDir, "audit-archive") },
          ...(options.onStoreError === undefined ? {} : { onError: options.onStoreError }),
        });
  try {
    const environment = await store.getMeta("environment");
    if (environment !== "live" && environment !== "test") {
      throw new DataDirError(`${dataDir} has no environment recorded: run \`portcullis init --data ${dataDir}\``);
    }
    const custody = await openCustody(dataDir, store, options.custody);
    return {
      store,
      envelope: custody.envelope,
      kek: custody.kek,
      signingKeys: custody.signingKeys,
      custody,
      environment,
      async close() {
        await store.close();
        await custody.close();
      },
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}

/**
 * Opens the gateway's audit-checkpoint signing key once (creating it on a first start): a gateway
 * that starts proves it can open the deployment's secrets. A host whose keyring.json is not the
 * deployment's — made by `init` on that host instead of copied — would otherwise start and then
 * refuse every key made elsewhere (KEY_STORE_UNAVAILABLE) and fail each checkpoint; it stops here
 * with CUSTODY_DECRYPT_FAILED naming the fix.
 */
export async function checkSecretsOpen(data: OpenDataDir, dataDir: string): Promise<void> {
  try {
    await data.signingKeys.open("audit-checkpoint");
  } catch (err) {
    if (err instanceof CustodyError && err.code === "CUSTODY_DECRYPT_FAILED") {
      throw new CustodyError(
        "CUSTODY_DECRYPT_FAILED",
        `${dataDir}'s key-encryption key does not open the store's secrets (its audit-checkpoint signing key): this host's keyring is not the deployment's — copy keyring.json from a host that works (mode 0600), or configure the deployment's HSM`,
      );
    }
    throw err;
  }
}
