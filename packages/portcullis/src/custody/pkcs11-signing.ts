import { createPublicKey, randomBytes, type KeyObject } from "node:crypto";
import type { MetaStore } from "../storage/types.js";
import { CustodyError } from "./errors.js";
import { CKK_EC_EDWARDS, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA, type Pkcs11Token } from "./pkcs11-token.js";
import type { SigningKey, SigningKeyProvider, SigningPurpose } from "../contract/signing.js";

/**
 * Signing keys held in a PKCS#11 token (the `SigningKeyProvider` contract of signing.ts): one
 * Ed25519 key pair per purpose, generated inside the token with CKM_EC_EDWARDS_KEY_PAIR_GEN; the
 * private key is CKA_SENSITIVE, not CKA_EXTRACTABLE, and never leaves the token: `sign` is a
 * CKM_EDDSA C_Sign. The public key is read out (CKA_EC_POINT) into a node KeyObject, so
 * verification needs no HSM call.
 *
 * Open-or-create is race-free across processes: a process that finds no key for the purpose
 * generates a pair under a fresh kid, then offers the kid to the durable store's meta table
 * (`initMeta`: the first offer wins, atomically). A process that lost the race destroys the pair
 * it made and uses the winner's, found in the token by CKA_ID. On one host the generation is also
 * serialised (`serialize`: the data directory's lock file), and a process that waited reads the
 * meta entry again first: SoftHSM keeps a token as files that each process re-reads lazily, and
 * several processes creating and destroying objects at once left one of them, now and then,
 * unable to find the winner's pair in time. With the lock, at most one process per host writes
 * the token for a purpose, and the others only read it. The meta entry also records the
 * public key (SPKI PEM); opening checks it against the token's, so a swapped entry is refused.
 */

/** The DER of OID 1.3.101.112 (id-Ed25519), the CKA_EC_PARAMS of an Ed25519 key. */
const ED25519_PARAMS = Buffer.from("06032b6570", "hex");

interface StoredHsmKey {
  readonly v: 1;
  readonly alg: "ed25519";
  readonly provider: "pkcs11";
  readonly kid: string;
  /** SPKI PEM. */
  readonly publicKey: string;
}

function isStoredHsmKey(value: unknown): value is StoredHsmKey {
  if (value === null || typeof value !== "object") return false;
  const o = value as Record<string, unknown>;
  return o.v === 1 && o.alg === "ed25519" && o.provider === "pkcs11" && typeof o.kid === "string" && typeof o.publicKey === "string";
}

/** The 32 raw public-key bytes from a CKA_EC_POINT (a DER OCTET STRING, or raw as some tokens give it). */
function rawPoint(point: Buffer): Buffer {
  if (point.length === 34 && point[0] === 0x04 && point[1] === 0x20) return point.subarray(2);
  if (point.length === 32) return point;
  throw new CustodyError("CUSTODY_HSM_FAILED", "the token returned an Ed25519 public key in an unknown encoding");
}

export class Pkcs11SigningKeys implements SigningKeyProvider {
  readonly name = "pkcs11";

  constructor(
    private readonly token: Pkcs11Token,
    private readonly meta: MetaStore,
    private readonly prefix: string,
    /** Runs a key generation holding a lock shared by this host's processes; default: unserialised. */
    private readonly serialize: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn(),
  ) {}

  /** The meta entry that records the HSM key of a purpose. */
  static metaName(purpose: SigningPurpose): string {
    return `signing-key-pkcs11:${purpose}`;
  }

  async open(purpose: SigningPurpose): Promise<SigningKey> {
    const name = Pkcs11SigningKeys.metaName(purpose);
    let text = await this.meta.getMeta(name);
    text ??= await this.serialize(async () => {
      // Another process of this host may have recorded one while this one waited for the lock.
      const recorded = await this.meta.getMeta(name);
      if (recorded !== undefined) return recorded;
      const made = await this.generate(purpose);
      const won = await this.meta.initMeta(name, JSON.stringify(made.stored));
      if (won !== JSON.stringify(made.stored)) {
        // A process of another host stored its key first: ours is never used.
        await this.token.destroy(made.privateKey);
        await this.token.destroy(made.publicKey);
      }
      return won;
    });
    let stored: unknown;
    try {
      stored = JSON.parse(text);
    } catch {
      stored = null;
    }
    if (!isStoredHsmKey(stored)) throw new CustodyError("CUSTODY_SIGNING_KEY_MISMATCH", `the recorded ${purpose} signing key is not in a known format`);
    const { privateKey, publicKey } = await this.findSoon(stored.kid);
    if (privateKey === undefined || publicKey === undefined) {
      throw new CustodyError(
        "CUSTODY_SIGNING_KEY_MISMATCH",
        `token "${this.token.options.tokenLabel}" holds no key pair ${stored.kid} for ${purpose} (was the token re-initialised, or is this another token?)`,
      );
    }
    const key = await this.publicKeyOf(publicKey);
    if (key.export({ type: "spki", format: "pem" }).toString() !== stored.publicKey) {
      throw new CustodyError("CUSTODY_SIGNING_KEY_MISMATCH", `the token's public key for ${stored.kid} differs from the one recorded in the data directory`);
    }
    const token = this.token;
    return {
      purpose,
      provider: this.name,
      kid: stored.kid,
      algorithm: "ed25519",
      publicKey: key,
      sign: (data) =>
        token.withSession(`signing with ${stored.kid}`, (lib, session) => {
          token.call("C_SignInit", () => {
            lib.C_SignInit(session, { mechanism: CKM_EDDSA }, privateKey);
          });
          return token.call("C_Sign", () => lib.C_SignAsync(session, Buffer.from(data.buffer, data.byteOffset, data.byteLength), Buffer.alloc(64)));
        }),
    };
  }

  /**
   * `find`, a few more times over about six seconds when the pair is not there yet: a pair another
   * process has just generated (it won the race to record its key) may not be visible to this
   * process's session at once — SoftHSM re-reads the token's object files lazily, and under load
   * (a CI run) that took longer than the second this waited before. Only an open that would
   * otherwise fail waits.
   */
  private async findSoon(kid: string): Promise<{ privateKey: Buffer | undefined; publicKey: Buffer | undefined }> {
    let found = await this.find(kid);
    for (let attempt = 0; attempt < 8 && (found.privateKey === undefined || found.publicKey === undefined); attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** attempt));
      found = await this.find(kid);
    }
    return found;
  }

  private async find(kid: string): Promise<{ privateKey: Buffer | undefined; publicKey: Buffer | undefined }> {
    const { p } = this.token;
    const id = Buffer.from(kid, "utf8");
    const [privateKeys, publicKeys] = [
      await this.token.find([
        { type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY },
        { type: p.CKA_ID, value: id },
      ]),
      await this.token.find([
        { type: p.CKA_CLASS, value: p.CKO_PUBLIC_KEY },
        { type: p.CKA_ID, value: id },
      ]),
    ];
    return { privateKey: privateKeys[0], publicKey: publicKeys[0] };
  }

  private async publicKeyOf(handle: Buffer): Promise<KeyObject> {
    const [point] = await this.token.attributes(handle, [this.token.p.CKA_EC_POINT]);
    if (point === undefined) throw new CustodyError("CUSTODY_HSM_FAILED", "the token returned no CKA_EC_POINT");
    return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: rawPoint(point).toString("base64url") }, format: "jwk" });
  }

  private async generate(purpose: SigningPurpose): Promise<{ stored: StoredHsmKey; privateKey: Buffer; publicKey: Buffer }> {
    const { p } = this.token;
    const kid = `${purpose}:${randomBytes(9).toString("base64url")}`;
    const id = Buffer.from(kid, "utf8");
    const label = `${this.prefix}${kid}`;
    const pair = await this.token.withSession(`generating the ${purpose} signing key`, (lib, session) =>
      this.token.call("C_GenerateKeyPair", () =>
        lib.C_GenerateKeyPair(
          session,
          { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
          [
            { type: p.CKA_CLASS, value: p.CKO_PUBLIC_KEY },
            { type: p.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
            { type: p.CKA_EC_PARAMS, value: ED25519_PARAMS },
            { type: p.CKA_TOKEN, value: true },
            { type: p.CKA_VERIFY, value: true },
            { type: p.CKA_LABEL, value: label },
            { type: p.CKA_ID, value: id },
          ],
          [
            { type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY },
            { type: p.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
            { type: p.CKA_TOKEN, value: true },
            { type: p.CKA_PRIVATE, value: true },
            { type: p.CKA_SENSITIVE, value: true },
            { type: p.CKA_EXTRACTABLE, value: false },
            { type: p.CKA_SIGN, value: true },
            { type: p.CKA_LABEL, value: label },
            { type: p.CKA_ID, value: id },
          ],
        ),
      ),
    );
    const publicKey = await this.publicKeyOf(pair.publicKey);
    return {
      stored: { v: 1, alg: "ed25519", provider: "pkcs11", kid, publicKey: publicKey.export({ type: "spki", format: "pem" }).toString() },
      privateKey: pair.privateKey,
      publicKey: pair.publicKey,
    };
  }
}
