import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { PASSPHRASE_PURPOSE, Envelope, retryUnderActiveKek } from "./envelope.js";
import type { DurableStore } from "../storage/types.js";
import { type CustodyConfig, DEFAULT_CUSTODY } from "./config.js";
import { CustodyError } from "./errors.js";
import { type KekProvider, KeyringFileProvider } from "./keyring.js";
import { withFileLock } from "./lock.js";
import { Pkcs11KekProvider } from "./pkcs11-kek.js";
import { Pkcs11SigningKeys } from "./pkcs11-signing.js";
import { Pkcs11Token } from "./pkcs11-token.js";
import { EnvelopeSigningKeys } from "./signing.js";
import type { SigningKeyProvider } from "../contract/signing.js";

/**
 * Opens a deployment's custody: the KEK provider the config names, the envelope over it, and the
 * provider of the gateway's own signing keys. This is the one function the rest of the code calls
 * (`openDataDir`, so `startPortcullis` and the CLI) to get `{ envelope, signingKeys }`.
 *
 * The data directory records which provider its secrets are under (meta `custody:provider`, set
 * at the first open); opening it with another provider is refused (CUSTODY_PROVIDER_MISMATCH),
 * since nothing under one KEK opens under another. Passphrase hashes stored in clear by an
 * older version are sealed under the KEK here, once.
 */
export interface Custody {
  readonly kek: KekProvider;
  readonly envelope: Envelope;
  readonly signingKeys: SigningKeyProvider;
  /** The PKCS#11 token when the provider is one (its call counts prove the hot path makes none). */
  readonly token: Pkcs11Token | null;
  close(): Promise<void>;
}

/** The data directory file that serialises KEK rotations and first-time KEK creation. */
export const CUSTODY_LOCK = "custody.lock";
/** The lock this host's processes take to generate a signing key in the token (pkcs11-signing.ts). */
export const SIGNING_KEYS_LOCK = "signing-keys.lock";

const BINDING = "custody:provider";

/** Reads the token PIN from a mode-0600 file or from the environment; never logs or echoes it. */
export function readPin(pin: { readonly file: string } | { readonly env: string }): string {
  if ("env" in pin) {
    const value = process.env[pin.env];
    if (value === undefined || value === "") {
      throw new CustodyError("CUSTODY_PIN_MISSING", `no PIN for the token: set $${pin.env}, or custody.pinFile to a mode-0600 file`);
    }
    return value;
  }
  let fd: number;
  try {
    fd = openSync(pin.file, constants.O_RDONLY);
  } catch (err) {
    throw new CustodyError("CUSTODY_PIN_MISSING", `cannot read the pin file ${pin.file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new CustodyError("CUSTODY_PIN_FILE_INSECURE", `the pin file ${pin.file} has mode 0${mode.toString(8)}; it must not be readable by group or others (chmod 600)`);
    }
    const value = readFileSync(fd, "utf8").replace(/\r?\n$/, "");
    if (value === "") throw new CustodyError("CUSTODY_PIN_MISSING", `the pin file ${pin.file} is empty`);
    return value;
  } finally {
    closeSync(fd);
  }
}

/** Opens the PKCS#11 token a config names (the PIN from its file or variable). */
export function openToken(config: Extract<CustodyConfig, { provider: "pkcs11" }>): Promise<Pkcs11Token> {
  return Pkcs11Token.open({ module: config.module, tokenLabel: config.tokenLabel, pin: readPin(config.pin) });
}

/** Opens only the KEK provider (restore needs no store). */
export async function openKekProvider(dataDir: string, config: CustodyConfig = DEFAULT_CUSTODY): Promise<KekProvider> {
  if (config.provider === "keyring") {
    const keyring = KeyringFileProvider.load(resolve(dataDir, config.keyring ?? "keyring.json"));
    await keyring.sweep();
    return keyring;
  }
  const token = await openToken(config);
  try {
    return await Pkcs11KekProvider.open(token, config.labelPrefix, (create) => withFileLock(join(dataDir, CUSTODY_LOCK), "the custody of this data directory", create, 30_000));
  } catch (err) {
    await token.close();
    throw err;
  }
}

/** The provider name a config means (what the data directory records). */
export function providerName(config: CustodyConfig): string {
  return config.provider === "keyring" ? "keyring-file" : "pkcs11";
}

async function checkBinding(dataDir: string, store: DurableStore, name: string): Promise<void> {
  const bound = await store.meta.initMeta(BINDING, name);
  if (bound === name) return;
  // Rebinding is allowed only while nothing is stored under the other provider.
  const keys = await store.envelopes.keyEnvelopes("", 1);
  const held = await store.envelopes.heldEnvelopes("", 1);
  const metas = (await store.envelopes.metaEntries("secret:")).length + (await store.envelopes.metaEntries("signing-key:")).length;
  if (keys.length === 0 && held.length === 0 && metas === 0 && (await store.envelopes.replaceMeta(BINDING, bound, name))) return;
  const hint =
    bound === "pkcs11"
      ? 'configure its PKCS#11 token (custody.provider "pkcs11" in the config file; the custody, backup and restore commands read it with --config FILE)'
      : `configure custody.provider "${bound === "keyring-file" ? "keyring" : bound}"`;
  throw new CustodyError("CUSTODY_PROVIDER_MISMATCH", `${dataDir} keeps its secrets under the ${bound} provider, not ${name}: ${hint}`);
}

/** Seals passphrase hashes that an older version stored in clear (once; a no-op afterwards). */
export async function sealLegacyPassphrases(store: DurableStore, envelope: Envelope): Promise<number> {
  let sealed = 0;
  let after = "";
  for (;;) {
    const rows = await store.envelopes.keyEnvelopes(after, 500);
    for (const row of rows) {
      if (row.legacyPassphraseHash === null || row.passphraseEnvelope !== null) continue;
      const hash = row.legacyPassphraseHash;
      const seal = async (): Promise<boolean> => store.envelopes.sealLegacyPassphrase(row.id, hash, await envelope.encrypt(Buffer.from(hash, "utf8"), PASSPHRASE_PURPOSE, row.id));
      if (await retryUnderActiveKek(envelope, seal)) sealed++;
    }
    const last = rows[rows.length - 1];
    if (last === undefined || rows.length < 500) return sealed;
    after = last.id;
  }
}

export async function openCustody(dataDir: string, store: DurableStore, config: CustodyConfig = DEFAULT_CUSTODY): Promise<Custody> {
  const kek = await openKekProvider(dataDir, config);
  let token: Pkcs11Token | null = null;
  try {
    await checkBinding(dataDir, store, kek.name);
    const envelope = new Envelope(kek);
    // The same (process-shared) token the KEK provider holds: one more reference, for the
    // signing keys and for the call counts.
    if (config.provider === "pkcs11") token = await openToken(config);
    let signingKeys: SigningKeyProvider;
    if (config.provider === "pkcs11" && config.signingKeys === "pkcs11" && token !== null) {
      signingKeys = new Pkcs11SigningKeys(token, store.meta, config.labelPrefix, (generate) => withFileLock(join(dataDir, SIGNING_KEYS_LOCK), "the token's signing-key generation", generate, 30_000));
    } else {
      signingKeys = new EnvelopeSigningKeys(store.meta, envelope);
    }
    await sealLegacyPassphrases(store, envelope);
    const held = token;
    return {
      kek,
      envelope,
      signingKeys,
      token: held,
      async close() {
        await kek.close();
        await held?.close();
      },
    };
  } catch (err) {
    await kek.close();
    await token?.close();
    throw err;
  }
}
