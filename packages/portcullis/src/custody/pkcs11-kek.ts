import { randomBytes } from "node:crypto";
import { CustodyError } from "./errors.js";
import type { KekProvider } from "./keyring.js";
import { hsmError, type Pkcs11Token } from "./pkcs11-token.js";

/**
 * The PKCS#11 KEK provider: each KEK version is an AES-256 secret key generated inside the token
 * (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, not CKA_EXTRACTABLE: it never leaves the HSM), labelled
 * `<prefix>kek-v<N>`, all sharing CKA_ID `<prefix>kek`. The highest version present is the active
 * one; a rotation generates the next and, after the rewrap, destroys the old ones.
 *
 * Wrapping uses CKM_AES_GCM (C_Encrypt / C_Decrypt) with the envelope's associated data as GCM's
 * AAD, not CKM_AES_KEY_WRAP_PAD. Why: key wrap (RFC 5649) has no associated data, so the binding
 * of a data key to its row would rest on the inner layer alone; GCM authenticates the AAD inside
 * the HSM's own operation, in one call pair. C_WrapKey would also need the data key as a token
 * object (C_CreateObject … C_DestroyObject per wrap) without keeping anything out of this
 * process, which needs the plaintext data key anyway to open the secret. The 96-bit IV comes
 * from node's CSPRNG (one per wrap; at the volumes of key creation and rotation, far below GCM's
 * 2^32 random-IV bound per key, and every rotation starts a fresh key). Layout of `wrapped`:
 * iv (12) || ciphertext (32) || tag (16).
 */
const IV_LEN = 12;
const TAG_BITS = 128;
const LABEL = /^kek-v([1-9][0-9]{0,8})$/;
/**
 * How long `wrap` trusts its view of the active version before looking in the token again. Another
 * process's rotation is therefore seen within this time; a rotation waits much longer (its settle
 * time, 2 s by default) before its final pass, so nothing wrapped under an old version is missed.
 */
const ACTIVE_FRESH_MS = 250;

export class Pkcs11KekProvider implements KekProvider {
  readonly name = "pkcs11";
  private keks = new Map<number, Buffer>();
  private active = 0;
  private refreshedAt = 0;

  private constructor(
    private readonly token: Pkcs11Token,
    private readonly prefix: string,
  ) {}

  /**
   * Opens the KEK of `token`; when the token holds no version yet, generates version 1 (the
   * caller holds the data directory's custody lock, so two processes never both create it).
   */
  static async open(token: Pkcs11Token, prefix: string, createFirst: (create: () => Promise<void>) => Promise<void>): Promise<Pkcs11KekProvider> {
    const provider = new Pkcs11KekProvider(token, prefix);
    await provider.refresh();
    if (provider.active === 0) {
      await createFirst(async () => {
        await provider.refresh();
        if (provider.active === 0) await provider.generate(1);
      });
      await provider.refresh();
    }
    if (provider.active === 0) throw new CustodyError("CUSTODY_HSM_FAILED", `token "${token.options.tokenLabel}" holds no KEK`);
    return provider;
  }

  get activeVersion(): number {
    return this.active;
  }

  private get p(): Pkcs11Token["p"] {
    return this.token.p;
  }

  /** Re-reads the KEK versions from the token (another process may have rotated). */
  private async refresh(): Promise<void> {
    const { p } = this;
    const handles = await this.token.find([
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_ID, value: Buffer.from(`${this.prefix}kek`, "utf8") },
    ]);
    const keks = new Map<number, Buffer>();
    for (const handle of handles) {
      const [label] = await this.token.attributes(handle, [p.CKA_LABEL]);
      const text = label?.toString("utf8") ?? "";
      const match = text.startsWith(this.prefix) ? LABEL.exec(text.slice(this.prefix.length)) : null;
      if (match?.[1] !== undefined) keks.set(Number(match[1]), handle);
    }
    this.keks = keks;
    this.active = keks.size === 0 ? 0 : Math.max(...keks.keys());
    this.refreshedAt = Date.now();
  }

  private async generate(version: number): Promise<void> {
    const { p } = this;
    await this.token.withSession(`generating KEK version ${version}`, (lib, session) => {
      this.token.call("C_GenerateKey", () =>
        lib.C_GenerateKey(session, { mechanism: p.CKM_AES_KEY_GEN }, [
          { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
          { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
          { type: p.CKA_VALUE_LEN, value: 32 },
          { type: p.CKA_TOKEN, value: true },
          { type: p.CKA_PRIVATE, value: true },
          { type: p.CKA_SENSITIVE, value: true },
          { type: p.CKA_EXTRACTABLE, value: false },
          { type: p.CKA_ENCRYPT, value: true },
          { type: p.CKA_DECRYPT, value: true },
          { type: p.CKA_WRAP, value: false },
          { type: p.CKA_UNWRAP, value: false },
          { type: p.CKA_SIGN, value: false },
          { type: p.CKA_VERIFY, value: false },
          { type: p.CKA_DERIVE, value: false },
          { type: p.CKA_LABEL, value: `${this.prefix}kek-v${version}` },
          { type: p.CKA_ID, value: Buffer.from(`${this.prefix}kek`, "utf8") },
        ]),
      );
    });
  }

  private gcm(iv: Buffer, aad: Buffer): { mechanism: number; parameter: { type: number; iv: Buffer; aad: Buffer; ivBits: number; tagBits: number } } {
    const { p } = this;
    return { mechanism: p.CKM_AES_GCM, parameter: { type: p.CK_PARAMS_AES_GCM, iv, aad, ivBits: IV_LEN * 8, tagBits: TAG_BITS } };
  }

  /**
   * Runs `op` with a KEK's handle; when the handle went stale (another process destroyed or
   * recreated objects), looks in the token again and retries once.
   */
  private async withKek<T>(version: number | "active", op: (handle: Buffer, version: number) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const v = version === "active" ? this.active : version;
      const handle = this.keks.get(v);
      if (handle === undefined) {
        if (attempt === 0) {
          await this.refresh();
          continue;
        }
        throw new CustodyError("CUSTODY_KEK_VERSION_UNKNOWN", `KEK version ${v} is not in token "${this.token.options.tokenLabel}" (retired, or another token)`);
      }
      try {
        return await op(handle, v);
      } catch (err) {
        if (attempt > 0 || !(err instanceof Error) || !/CKR_(KEY|OBJECT)_HANDLE_INVALID/.test(err.message)) throw err;
        await this.refresh();
      }
    }
  }

  async wrap(dataKey: Buffer, aad: Buffer): Promise<{ kekVersion: number; wrapped: Buffer }> {
    if (Date.now() - this.refreshedAt >= ACTIVE_FRESH_MS) await this.refresh();
    return this.withKek("active", (kek, version) => this.wrapWith(kek, version, dataKey, aad));
  }

  private async wrapWith(kek: Buffer, version: number, dataKey: Buffer, aad: Buffer): Promise<{ kekVersion: number; wrapped: Buffer }> {
    const iv = randomBytes(IV_LEN);
    const body = await this.token.withSession(`wrapping under KEK version ${version}`, (lib, session) => {
      this.token.call("C_EncryptInit", () => {
        lib.C_EncryptInit(session, this.gcm(iv, aad), kek);
      });
      return this.token.call("C_Encrypt", () => lib.C_EncryptAsync(session, dataKey, Buffer.alloc(dataKey.length + TAG_BITS / 8 + 16)));
    });
    return { kekVersion: version, wrapped: Buffer.concat([iv, body]) };
  }

  unwrap(kekVersion: number, wrapped: Buffer, aad: Buffer): Promise<Buffer> {
    if (wrapped.length <= IV_LEN + TAG_BITS / 8) return Promise.reject(new CustodyError("CUSTODY_ENVELOPE_MALFORMED", "wrapped data key too short"));
    return this.withKek(kekVersion, (kek) => this.unwrapWith(kek, kekVersion, wrapped, aad));
  }

  private async unwrapWith(kek: Buffer, kekVersion: number, wrapped: Buffer, aad: Buffer): Promise<Buffer> {
    const iv = wrapped.subarray(0, IV_LEN);
    try {
      return await this.token.withSession(`unwrapping under KEK version ${kekVersion}`, (lib, session) => {
        this.token.call("C_DecryptInit", () => {
          lib.C_DecryptInit(session, this.gcm(Buffer.from(iv), aad), kek);
        });
        return this.token.call("C_Decrypt", () => lib.C_DecryptAsync(session, wrapped.subarray(IV_LEN), Buffer.alloc(wrapped.length)));
      });
    } catch (err) {
      const failure = hsmError(err, "unwrap");
      // GCM's tag check failing is reported by tokens as CKR_ENCRYPTED_DATA_INVALID, or (SoftHSM) CKR_GENERAL_ERROR.
      if (failure.code === "CUSTODY_HSM_FAILED" && /CKR_(ENCRYPTED_DATA_INVALID|GENERAL_ERROR|ENCRYPTED_DATA_LEN_RANGE)/.test(failure.message)) {
        throw new CustodyError("CUSTODY_DECRYPT_FAILED", `the wrapped data key does not authenticate under KEK version ${kekVersion} (tampered, moved to another row, or another KEK)`);
      }
      throw failure;
    }
  }

  async versions(): Promise<{ active: number; held: readonly number[] }> {
    await this.refresh();
    return { active: this.active, held: [...this.keks.keys()].sort((a, b) => a - b) };
  }

  async addVersion(): Promise<number> {
    await this.refresh();
    const next = this.active + 1;
    await this.generate(next);
    await this.refresh();
    return next;
  }

  async retire(version: number): Promise<void> {
    await this.refresh();
    if (version === this.active) throw new CustodyError("CUSTODY_KEK_VERSION_UNKNOWN", `KEK version ${version} is the active one and cannot be retired`);
    const handle = this.keks.get(version);
    if (handle === undefined) return;
    await this.token.destroy(handle);
    await this.refresh();
  }

  describe(): Readonly<Record<string, string>> {
    return { provider: this.name, module: this.token.options.module, token: this.token.options.tokenLabel, serial: this.token.serial, labelPrefix: this.prefix };
  }

  close(): Promise<void> {
    return this.token.close();
  }
}
