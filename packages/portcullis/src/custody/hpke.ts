import { randomBytes, type webcrypto } from "node:crypto";
import { performance } from "node:perf_hooks";
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { type Denial, deny } from "../errors/catalogue.js";
import type { HpkeKeyRow, HpkeKeyStore } from "../storage/types.js";
import { type Envelope, HPKE_PRIVATE_PURPOSE, retryUnderActiveKek } from "./envelope.js";

/**
 * The gateway's HPKE keys for sealed orders (docs/sealed-orders.md): RFC 9180 base mode with
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-128-GCM, through @hpke/core over WebCrypto.
 *
 * Key pairs are generated with WebCrypto; the raw private key is kept only in an envelope under
 * the custody provider's KEK (as HMAC secrets are: purpose `hpke-private`, bound to the key id),
 * in the durable store's `hpke_keys` table, and in this process's memory as a non-extractable
 * CryptoKey. A key is current from its creation to its `notAfter` (`rotate` later) or until the
 * next generation is created, whichever is first; then it is still accepted for `grace`, then
 * refused (SEALED_KEY_UNKNOWN) and retired (its envelope erased). Generations are numbered and
 * one row holds each, so several gateway processes sharing PostgreSQL that rotate at once make
 * one key, and every one of them learns it on its next load.
 */

export const HPKE_SUITE = { kem: "DHKEM(X25519, HKDF-SHA256)", kdf: "HKDF-SHA256", aead: "AES-128-GCM" } as const;
/** Nenc of DHKEM(X25519, HKDF-SHA256): the sealed body starts with this many bytes of `enc`. */
export const HPKE_ENC_LENGTH = 32;
/** AES-128-GCM's tag: the shortest ciphertext. */
const TAG_LENGTH = 16;

export const DEFAULT_SEALING_ROTATE_MS = 24 * 3_600_000;
export const DEFAULT_SEALING_GRACE_MS = 10 * 60_000;
/** An unknown key id makes the keyring reload from the store at most this often (ms). */
const RELOAD_EVERY_MS = 1_000;

const KEY_ID_RE = /^[A-Za-z0-9_-]{16}$/;

/** The `sealing` section of the configuration. */
export interface SealingSettings {
  /** Sealed requests are opened (and /portcullis/v1/hpke answered); false: refused SEALED_NOT_SUPPORTED. */
  readonly enabled: boolean;
  /** How long a key is current (ms). */
  readonly rotateMs: number;
  /** How long a key is still accepted after it stopped being current (ms). */
  readonly graceMs: number;
}

export const DEFAULT_SEALING: SealingSettings = { enabled: true, rotateMs: DEFAULT_SEALING_ROTATE_MS, graceMs: DEFAULT_SEALING_GRACE_MS };

/** A key as /portcullis/v1/hpke publishes it. */
export interface PublishedHpkeKey {
  readonly id: string;
  /** The raw 32-byte X25519 public key, base64url. */
  readonly publicKey: string;
  /** When it stops being current (epoch ms): seal with the next one after. */
  readonly notAfter: number;
}

export interface HpkeKeyringOptions {
  readonly store: HpkeKeyStore;
  readonly envelope: Envelope;
  readonly rotateMs?: number;
  readonly graceMs?: number;
  readonly now?: () => number;
}

interface LoadedKey {
  readonly row: HpkeKeyRow;
  /** When it stopped (or stops) being current: its notAfter, or its successor's creation if earlier. */
  supersededAt: number;
  readonly pair: webcrypto.CryptoKeyPair;
}

let suiteInstance: CipherSuite | null = null;
/** The one cipher suite (stateless; built on first use). */
export function hpkeSuite(): CipherSuite {
  suiteInstance ??= new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
  return suiteInstance;
}

/**
 * The associated data that binds a sealed body to the signature it travels under
 * (docs/sealed-orders.md): `portcullis-sealed-v1\n<keyid>\n<nonce>\n<method>\n<path+query>`, the
 * keyid and nonce of the request's signature (a session's token for a session), the method and
 * the request target as sent.
 */
export function sealedAad(keyId: string, nonce: string, method: string, target: string): Uint8Array {
  return Buffer.from(`portcullis-sealed-v1\n${keyId}\n${nonce}\n${method}\n${target}`, "utf8");
}

function checkDuration(name: string, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 1_000) throw new TypeError(`${name} must be at least one second`);
}

export class HpkeKeyring {
  readonly rotateMs: number;
  readonly graceMs: number;
  private readonly store: HpkeKeyStore;
  private readonly envelope: Envelope;
  private readonly now: () => number;
  /** Newest generation first. */
  private keys: LoadedKey[] = [];
  private byId = new Map<string, LoadedKey>();
  private loading: Promise<void> | null = null;
  /** When an unknown key id last made this process read the store (performance.now() ms). */
  private lastMiss = Number.NEGATIVE_INFINITY;
  private rotating: Promise<void> | null = null;

  constructor(options: HpkeKeyringOptions) {
    this.rotateMs = options.rotateMs ?? DEFAULT_SEALING_ROTATE_MS;
    this.graceMs = options.graceMs ?? DEFAULT_SEALING_GRACE_MS;
    checkDuration("sealing.rotate", this.rotateMs);
    if (!Number.isSafeInteger(this.graceMs) || this.graceMs < 0) throw new TypeError("sealing.grace must be a non-negative number of ms");
    this.store = options.store;
    this.envelope = options.envelope;
    this.now = options.now ?? Date.now;
  }

  /**
   * Loads the live keys, creates the next generation when none is current, and retires keys whose
   * grace is over. The runtime calls it at startup and then periodically; safe to call from several
   * processes at once.
   */
  async refresh(): Promise<void> {
    await this.load();
    const now = this.now();
    const current = this.keys[0];
    if (current === undefined || current.row.notAfter <= now) await this.rotate();
    const before = now - this.graceMs;
    if (this.keys.some((k) => k.supersededAt <= before)) {
      await this.store.retire(before, now);
      await this.load();
    }
  }

  /**
   * Creates the next generation now (CLI `portcullis sealing rotate`; `refresh` when the current
   * one is over). When another process made that generation first, its key is the one kept.
   */
  rotate(): Promise<void> {
    this.rotating ??= this.makeNext().finally(() => {
      this.rotating = null;
    });
    return this.rotating;
  }

  private async makeNext(): Promise<void> {
    await this.load();
    const suite = hpkeSuite();
    // @hpke/core types its keys with the DOM's WebCrypto types; Node's are the same objects.
    const pair = (await suite.kem.generateKeyPair()) as unknown as webcrypto.CryptoKeyPair;
    const publicKey = Buffer.from(await suite.kem.serializePublicKey(pair.publicKey));
    const raw = Buffer.from(await suite.kem.serializePrivateKey(pair.privateKey));
    const id = randomBytes(12).toString("base64url");
    const now = this.now();
    try {
      const generation = (this.keys[0]?.row.generation ?? 0) + 1;
      await retryUnderActiveKek(this.envelope, async () => {
        const privateEnvelope = await this.envelope.encrypt(raw, HPKE_PRIVATE_PURPOSE, id);
        await this.store.insert({ id, generation, publicKey: publicKey.toString("base64url"), privateEnvelope, createdAt: now, notAfter: now + this.rotateMs, retiredAt: null });
      });
    } finally {
      raw.fill(0);
    }
    await this.load();
  }

  /** Reads the live keys from the store (one read at a time: callers meanwhile share it). */
  load(): Promise<void> {
    this.loading ??= this.read().finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  private async read(): Promise<void> {
    const rows = await this.store.live();
    const suite = hpkeSuite();
    const loaded: LoadedKey[] = [];
    for (const row of rows) {
      const known = this.byId.get(row.id);
      if (known !== undefined) {
        loaded.push({ row, supersededAt: row.notAfter, pair: known.pair });
        continue;
      }
      if (row.privateEnvelope === null) continue;
      const raw = await this.envelope.decrypt(row.privateEnvelope, HPKE_PRIVATE_PURPOSE, row.id);
      try {
        const privateKey = (await suite.kem.deserializePrivateKey(raw)) as unknown as webcrypto.CryptoKey;
        const publicKey = (await suite.kem.deserializePublicKey(Buffer.from(row.publicKey, "base64url"))) as unknown as webcrypto.CryptoKey;
        loaded.push({ row, supersededAt: row.notAfter, pair: { privateKey, publicKey } });
      } finally {
        raw.fill(0);
      }
    }
    for (let i = 1; i < loaded.length; i++) {
      const key = loaded[i] as LoadedKey;
      const successor = loaded[i - 1] as LoadedKey;
      key.supersededAt = Math.min(key.row.notAfter, successor.row.createdAt);
    }
    this.keys = loaded;
    this.byId = new Map(loaded.map((k) => [k.row.id, k]));
  }

  /** The keys clients may seal with, current first, and how long the answer may be cached (s). */
  published(): { readonly keys: PublishedHpkeKey[]; readonly maxAge: number } {
    const now = this.now();
    const keys = this.keys.filter((k) => now < k.supersededAt + this.graceMs).map((k) => ({ id: k.row.id, publicKey: k.row.publicKey, notAfter: k.supersededAt }));
    const current = this.keys[0];
    const maxAge = current === undefined ? 0 : Math.max(0, Math.floor((current.supersededAt - now) / 1000));
    return { keys, maxAge };
  }

  /** Is there a current key (one whose `notAfter` is still ahead)? */
  hasCurrent(): boolean {
    const current = this.keys[0];
    return current !== undefined && this.now() < current.supersededAt;
  }

  /**
   * Opens `sealed` (enc || ciphertext) with key `keyId` and `aad`: the plaintext, or a refusal
   * (SEALED_KEY_UNKNOWN, SEALED_MALFORMED, SEALED_OPEN_FAILED). A key id this process has not
   * loaded makes it read the store again (another process may have rotated), at most once a second.
   */
  async open(keyId: string, sealed: Buffer, aad: Uint8Array, now: number): Promise<Buffer | Denial> {
    if (!KEY_ID_RE.test(keyId)) return deny("SEALED_MALFORMED", "Portcullis-Sealed is not a key id");
    if (sealed.length < HPKE_ENC_LENGTH + TAG_LENGTH) return deny("SEALED_MALFORMED", "the body is shorter than enc and a tag");
    let key = this.byId.get(keyId);
    if (key === undefined) {
      // Unknown ids (made elsewhere, or made up) cost at most one store read a second.
      // A read under way (another miss's) is waited for rather than refused past.
      const t = performance.now();
      if (this.loading !== null) {
        await this.loading;
      } else if (t - this.lastMiss >= RELOAD_EVERY_MS) {
        this.lastMiss = t;
        await this.load();
      }
      key = this.byId.get(keyId);
    }
    if (key === undefined) return deny("SEALED_KEY_UNKNOWN");
    if (now >= key.supersededAt + this.graceMs) return deny("SEALED_KEY_UNKNOWN", "the key's grace is over");
    const enc = sealed.subarray(0, HPKE_ENC_LENGTH);
    const ct = sealed.subarray(HPKE_ENC_LENGTH);
    try {
      const plaintext = await hpkeSuite().open({ recipientKey: key.pair, enc: copy(enc) }, copy(ct), aad);
      return Buffer.from(plaintext);
    } catch {
      return deny("SEALED_OPEN_FAILED");
    }
  }
}

/** A fresh ArrayBuffer holding `view`'s bytes (WebCrypto reads whole buffers). */
function copy(view: Buffer): ArrayBuffer {
  const out = new ArrayBuffer(view.length);
  new Uint8Array(out).set(view);
  return out;
}
