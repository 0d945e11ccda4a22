/**
 * Test support: a real core on a temporary data directory (SQLite file, keyring file), a clock
 * the test controls, and an independent RFC 9421 signer written with node:crypto (deliberately
 * not the client SDK, so server and SDK are checked against each other, not against themselves).
 */
import { valueOrThrow } from "../../src/errors/result.js";
import { createHash, createHmac, randomBytes, sign as cryptoSign, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RouteSpec } from "../../src/authz/routes.js";
import type { DurableStore } from "../../src/storage/types.js";
import { Portcullis, type PortcullisOptions } from "../../src/core/core.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import type { KeyView } from "../../src/contract/keys.js";
import { SessionAuthority } from "../../src/sessions/authority.js";
import { initDataDir, openDataDir } from "../../src/core/data-dir.js";
import { HpkeKeyring } from "../../src/custody/hpke.js";

export const TEST_ROUTES: RouteSpec[] = [
  { method: "GET", path: "/public/time", permission: "public" },
  { method: "GET", path: "/api/v3/account", permission: "read", weight: 20 },
  { method: "GET", path: "/api/v3/order", permission: "read", weight: 4 },
  { method: "POST", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["order"] },
  { method: "DELETE", path: "/api/v3/order", permission: "trade", weight: 1, tags: ["cancel"] },
  { method: "POST", path: "/sapi/v1/capital/withdraw/apply", permission: "withdraw" },
];

/** Where a FakeClock starts by default (a hot store a test builds itself begins its memory here). */
export const TEST_START = Date.UTC(2026, 10, 22, 12, 0, 0);

/** A clock frozen at `start` that moves only when told. */
export class FakeClock {
  constructor(public ms = TEST_START) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
  get seconds(): number {
    return Math.floor(this.ms / 1000);
  }
}

export interface TestCore {
  readonly core: Portcullis;
  /** The data directory's durable store (the core's). */
  readonly store: DurableStore;
  readonly dataDir: string;
  readonly clock: FakeClock;
  /** The HPKE keyring of sealed orders (`sealing: true`), on the test's clock; else null. */
  readonly sealing: HpkeKeyring | null;
  createKey(input: Record<string, unknown>): Promise<{ key: KeyView; secret: string | null }>;
  cleanup(): Promise<void>;
}

export type CoreOptions = Partial<Omit<PortcullisOptions, "store" | "envelope" | "environment" | "sessions" | "sealing">> & {
  environment?: "live" | "test";
  /** Give the core a session authority from its data directory's keys. */
  sessions?: boolean;
  /** The store's durable writes on a worker thread, as `portcullis start` runs them (storage/sqlite/writer.ts). */
  offThreadWrites?: boolean;
  /** Sealed orders: an HPKE keyring on the data directory (a current key made now), on the test's clock. */
  sealing?: boolean | { rotateMs?: number; graceMs?: number };
};

export async function makeCore(options: CoreOptions = {}): Promise<TestCore> {
  const dataDir = mkdtempSync(join(tmpdir(), "portcullis-test-"));
  const { sessions: withSessions, environment: env, offThreadWrites, sealing: withSealing, ...rest } = options;
  const environment = env ?? "test";
  await initDataDir(dataDir, environment);
  const data = await openDataDir(dataDir, { pollIntervalMs: 50, offThreadWrites: offThreadWrites === true });
  const clock = new FakeClock();
  const sessions = withSessions === true ? await SessionAuthority.open({ meta: data.store, envelope: data.envelope, environment }) : undefined;
  const sealingTimes: { rotateMs?: number; graceMs?: number } = typeof withSealing === "object" ? withSealing : {};
  const sealing =
    withSealing === undefined || withSealing === false
      ? null
      : new HpkeKeyring({ store: data.store.hpke, envelope: data.envelope, now: clock.now, ...sealingTimes });
  await sealing?.refresh();
  const core = new Portcullis({
    routes: TEST_ROUTES,
    now: clock.now,
    ...rest,
    ...(sessions === undefined ? {} : { sessions }),
    ...(sealing === null ? {} : { sealing }),
    store: data.store,
    envelope: data.envelope,
    environment,
  });
  return {
    core,
    store: data.store,
    dataDir,
    clock,
    sealing,
    createKey: (input) => core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct-1", scopes: ["read", "trade"], ...input }, clock.ms)), "test"),
    async cleanup() {
      await core.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export type SignAlg = "hmac-sha256" | "ed25519" | "ecdsa-p256-sha256" | "rsa-pss-sha512" | "rsa-v1_5-sha256" | "ecdsa-secp256k1-sha256";

export interface SignSpec {
  readonly method: string;
  /** Path and query as sent. */
  readonly url: string;
  readonly host?: string;
  readonly body?: string | Buffer;
  readonly keyId: string;
  /** HMAC secret (UTF-8 bytes) or a private KeyObject. */
  readonly key: string | KeyObject;
  readonly alg?: SignAlg;
  readonly includeAlg?: boolean;
  readonly created: number;
  readonly nonce?: string;
  readonly components?: readonly string[];
  readonly label?: string;
  readonly extraParams?: string;
  /** Send (and sign) this Content-Digest value instead of the body's real digest. */
  readonly contentDigest?: string;
  /** Makes the signature from the signature base's bytes instead of `key` (another signer, a tampered signature). */
  readonly signWith?: (base: Buffer) => Uint8Array;
  /** More headers sent, by lower-case name (covered when named in `components`). */
  readonly headers?: Readonly<Record<string, string>>;
}

export type SignedHeaders = Record<string, string> & { host: string; "signature-input": string; signature: string };

/** Signs a request the way a correct client would, and returns the headers to send. */
export function signRequest(spec: SignSpec): SignedHeaders {
  const host = spec.host ?? "gateway.test";
  const body = spec.body === undefined ? Buffer.alloc(0) : Buffer.from(spec.body);
  const q = spec.url.indexOf("?");
  const path = q < 0 ? spec.url : spec.url.slice(0, q);
  const query = q < 0 ? "?" : spec.url.slice(q);
  const headers: Record<string, string> = { ...spec.headers, host };
  const components = spec.components ?? ["@method", "@authority", "@path", "@query", ...(body.length > 0 ? ["content-digest"] : [])];
  if (spec.contentDigest !== undefined) headers["content-digest"] = spec.contentDigest;
  else if (body.length > 0) headers["content-digest"] = `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;
  const alg = spec.alg ?? "hmac-sha256";
  const nonce = spec.nonce ?? randomBytes(16).toString("base64url");
  const params =
    `(${components.map((c) => `"${c}"`).join(" ")});created=${spec.created};nonce="${nonce}";keyid="${spec.keyId}"` +
    (spec.includeAlg === false ? "" : `;alg="${alg}"`) +
    (spec.extraParams ?? "");
  const value = (c: string): string => {
    switch (c) {
      case "@method":
        return spec.method;
      case "@authority":
        // RFC 9421 section 2.2.3: lower case, default port removed (the gateway speaks http).
        return host.toLowerCase().replace(/:80$/, "");
      case "@path":
        return path;
      case "@query":
        return query;
      default:
        return headers[c] ?? "";
    }
  };
  const base = `${components.map((c) => `"${c}": ${value(c)}\n`).join("")}"@signature-params": ${params}`;
  let signature: Buffer;
  if (spec.signWith !== undefined) {
    signature = Buffer.from(spec.signWith(Buffer.from(base, "latin1")));
  } else if (typeof spec.key === "string") {
    signature = createHmac("sha256", Buffer.from(spec.key, "utf8")).update(base).digest();
  } else if (alg === "ed25519") {
    signature = cryptoSign(null, Buffer.from(base), spec.key);
  } else if (alg === "ecdsa-p256-sha256" || alg === "ecdsa-secp256k1-sha256") {
    signature = cryptoSign("sha256", Buffer.from(base), { key: spec.key, dsaEncoding: "ieee-p1363" });
  } else if (alg === "rsa-pss-sha512") {
    signature = cryptoSign("sha512", Buffer.from(base), { key: spec.key, padding: 6, saltLength: 64 });
  } else {
    signature = cryptoSign("sha256", Buffer.from(base), spec.key);
  }
  const label = spec.label ?? "sig1";
  return { ...headers, host, "signature-input": `${label}=${params}`, signature: `${label}=:${signature.toString("base64")}:` };
}
