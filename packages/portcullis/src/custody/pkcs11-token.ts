import { createHash, timingSafeEqual } from "node:crypto";
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type * as Pkcs11Types from "pkcs11js";
import { CustodyError } from "./errors.js";

/**
 * One logged-in PKCS#11 token, shared by the KEK provider and the signing-key provider of a
 * process. It loads the module (lazily: a deployment on the keyring file never loads pkcs11js),
 * finds the token by label, logs in as the user, and runs every operation on a session from a
 * small pool: an operation (EncryptInit + Encrypt, FindObjectsInit…Final) holds its session
 * exclusively, so concurrent callers never interleave on one session, and the multi-part calls
 * run off the event loop (pkcs11js's async variants; the module is initialised with
 * CKF_OS_LOCKING_OK for that).
 *
 * Every C_* call goes through `call`, which counts it (`calls`, `callCount`): the benchmark and
 * the tests prove with these counts that the request path makes none.
 *
 * Errors become `CustodyError`s naming the PKCS#11 return value (CKR_…) and never the PIN.
 */

type Pkcs11Module = typeof Pkcs11Types;
type Handle = Buffer;

/** PKCS#11 v3.0 values that pkcs11js (v2.40 headers) does not name. */
export const CKK_EC_EDWARDS = 0x40;
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
export const CKM_EDDSA = 0x1057;

export interface Pkcs11TokenOptions {
  /** Path of the PKCS#11 module (shared library), e.g. /usr/lib/softhsm/libsofthsm2.so. */
  readonly module: string;
  /** CKA_LABEL of the token (as set by `softhsm2-util --init-token --label`). */
  readonly tokenLabel: string;
  readonly pin: string;
  /** Sessions in the pool (default 4). */
  readonly sessions?: number;
}

let loadedBinding: Promise<Pkcs11Module> | null = null;

async function binding(): Promise<Pkcs11Module> {
  loadedBinding ??= import("pkcs11js").then((m: Pkcs11Module & { default?: Pkcs11Module }) => m.default ?? m);
  return loadedBinding;
}

/** The CKR_… name of a PKCS#11 failure, or null for anything else. */
function ckrName(err: unknown): string | null {
  if (err instanceof Error && /^CKR_[A-Z0-9_]+$/.test(err.message)) return err.message;
  return null;
}

/** Maps a failure of `what` to a CustodyError; only the CKR_ name is kept from the native error. */
export function hsmError(err: unknown, what: string): CustodyError {
  if (err instanceof CustodyError) return err;
  const name = ckrName(err);
  switch (name) {
    case "CKR_PIN_INCORRECT":
      return new CustodyError("CUSTODY_PIN_INCORRECT", `${what}: the token refused the PIN (CKR_PIN_INCORRECT)`);
    case "CKR_PIN_LOCKED":
      return new CustodyError("CUSTODY_PIN_LOCKED", `${what}: the token's user PIN is locked (CKR_PIN_LOCKED); the security officer must reset it`);
    case "CKR_MECHANISM_INVALID":
    case "CKR_MECHANISM_PARAM_INVALID":
      return new CustodyError("CUSTODY_MECHANISM_UNSUPPORTED", `${what}: the token does not support the mechanism (${name})`);
    default:
      return new CustodyError("CUSTODY_HSM_FAILED", `${what}: ${name ?? "the PKCS#11 module failed"}`);
  }
}

/** Modules are loaded and initialised once per process (C_Initialize is per application). */
interface LoadedModule {
  readonly lib: Pkcs11Types.PKCS11;
  refs: number;
}
const modules = new Map<string, Promise<LoadedModule>>();

async function loadModule(path: string): Promise<LoadedModule> {
  let loading = modules.get(path);
  if (loading === undefined) {
    loading = (async () => {
      if (!existsSync(path)) throw new CustodyError("CUSTODY_MODULE_NOT_FOUND", `the PKCS#11 module ${path} does not exist (for SoftHSM2: apt-get install softhsm2)`);
      const p = await binding();
      const lib = new p.PKCS11();
      try {
        lib.load(path);
      } catch {
        throw new CustodyError("CUSTODY_MODULE_NOT_FOUND", `${path} cannot be loaded as a PKCS#11 module`);
      }
      try {
        lib.C_Initialize({ flags: p.CKF_OS_LOCKING_OK });
      } catch (err) {
        if (ckrName(err) !== "CKR_CRYPTOKI_ALREADY_INITIALIZED") {
          lib.close();
          throw new CustodyError("CUSTODY_MODULE_NOT_FOUND", `the PKCS#11 module ${path} failed to initialise (${ckrName(err) ?? "error"})`);
        }
      }
      return { lib, refs: 0 };
    })();
    modules.set(path, loading);
    loading.catch(() => modules.delete(path));
  }
  const loaded = await loading;
  loaded.refs++;
  return loaded;
}

function releaseModule(path: string, loaded: LoadedModule): void {
  loaded.refs--;
  if (loaded.refs > 0) return;
  modules.delete(path);
  try {
    loaded.lib.C_Finalize();
  } catch {
    // Finalising an unusable module: nothing more to release.
  }
  try {
    loaded.lib.close();
  } catch {
    // Same.
  }
}

/** Tokens are shared per (module, label) within a process: one login, one session pool. */
const tokens = new Map<string, Promise<Pkcs11Token>>();

function pinDigest(pin: string): Buffer {
  return createHash("sha256").update(pin, "utf8").digest();
}

export class Pkcs11Token {
  /** C_* calls made through this token, by function name. */
  readonly calls = new Map<string, number>();
  private readonly idle: Handle[] = [];
  private readonly waiting: ((session: Handle) => void)[] = [];
  private openSessions = 0;
  private refs = 1;
  private closed = false;

  private constructor(
    readonly p: Pkcs11Module,
    private readonly loaded: LoadedModule,
    readonly options: Pkcs11TokenOptions,
    readonly slot: Handle,
    readonly serial: string,
    private readonly pinHash: Buffer,
    private readonly maxSessions: number,
  ) {}

  /**
   * Opens (or shares, within this process) the token: loads the module, finds the token by label,
   * opens a session and logs in. Refusals: CUSTODY_MODULE_NOT_FOUND, CUSTODY_TOKEN_NOT_FOUND,
   * CUSTODY_PIN_INCORRECT, CUSTODY_PIN_LOCKED.
   */
  static async open(options: Pkcs11TokenOptions): Promise<Pkcs11Token> {
    const key = `${options.module}\u0000${options.tokenLabel}`;
    const existing = tokens.get(key);
    if (existing !== undefined) {
      const token = await existing;
      if (!token.closed) {
        const digest = pinDigest(options.pin);
        if (!timingSafeEqual(digest, token.pinHash)) {
          throw new CustodyError("CUSTODY_PIN_INCORRECT", `token "${options.tokenLabel}": the PIN differs from the one this process logged in with`);
        }
        token.refs++;
        return token;
      }
    }
    const opening = Pkcs11Token.connect(options);
    tokens.set(key, opening);
    opening.catch(() => tokens.delete(key));
    return opening;
  }

  private static async connect(options: Pkcs11TokenOptions): Promise<Pkcs11Token> {
    const p = await binding();
    let loaded = await loadModule(options.module);
    try {
      const labels: string[] = [];
      let found: { slot: Handle; serial: string } | null = null;
      let failure: unknown = null;
      for (let attempt = 0; ; attempt++) {
        labels.length = 0;
        failure = null;
        try {
          for (const slot of loaded.lib.C_GetSlotList(true)) {
            const info = loaded.lib.C_GetTokenInfo(slot);
            const label = info.label.trim();
            if ((info.flags & p.CKF_TOKEN_INITIALIZED) === 0 || label === "") continue;
            labels.push(label);
            if (label === options.tokenLabel && found === null) found = { slot, serial: info.serialNumber.trim() };
          }
        } catch (err) {
          failure = err;
        }
        // A file-backed token (SoftHSM) being written by another process at the moment this one
        // initialised the module can be missed, or fail to read; a module no one else in this
        // process uses is initialised afresh and looked at again, a few times, before the token
        // counts as absent.
        if (found !== null || attempt >= 5 || loaded.refs > 1) break;
        releaseModule(options.module, loaded);
        await sleep(50 * (attempt + 1));
        loaded = await loadModule(options.module);
      }
      const { lib } = loaded;
      if (found === null && failure !== null) throw hsmError(failure, `listing the tokens of ${options.module}`);
      if (found === null) {
        throw new CustodyError(
          "CUSTODY_TOKEN_NOT_FOUND",
          `no PKCS#11 token labelled "${options.tokenLabel}" in ${options.module} (tokens present: ${labels.length === 0 ? "none" : labels.map((l) => `"${l}"`).join(", ")})`,
        );
      }
      const token = new Pkcs11Token(p, loaded, options, found.slot, found.serial, pinDigest(options.pin), Math.max(1, options.sessions ?? 4));
      const session = await token.acquire();
      try {
        // A file-backed token (SoftHSM) that another process is writing at this moment can fail
        // the login with CKR_GENERAL_ERROR while it reads the token's files: tried again a few
        // times. Any other refusal (a wrong PIN above all) is final at once.
        for (let attempt = 0; ; attempt++) {
          try {
            token.call("C_Login", () => {
              lib.C_Login(session, p.CKU_USER, options.pin);
            });
            break;
          } catch (err) {
            const name = ckrName(err);
            if (name === "CKR_USER_ALREADY_LOGGED_IN") break;
            if (name !== "CKR_GENERAL_ERROR" || attempt >= 5) {
              token.closeSessions();
              throw hsmError(err, `token "${options.tokenLabel}"`);
            }
            await sleep(50 * (attempt + 1));
          }
        }
      } finally {
        token.release(session);
      }
      return token;
    } catch (err) {
      releaseModule(options.module, loaded);
      throw err;
    }
  }

  /** Total C_* calls so far. */
  get callCount(): number {
    let n = 0;
    for (const v of this.calls.values()) n += v;
    return n;
  }

  /** Runs one C_* call, counting it. */
  call<T>(name: string, fn: () => T): T {
    this.calls.set(name, (this.calls.get(name) ?? 0) + 1);
    return fn();
  }

  private acquire(): Promise<Handle> {
    if (this.closed) return Promise.reject(new CustodyError("CUSTODY_HSM_FAILED", `token "${this.options.tokenLabel}" is closed`));
    const idle = this.idle.pop();
    if (idle !== undefined) return Promise.resolve(idle);
    if (this.openSessions < this.maxSessions) {
      try {
        const session = this.call("C_OpenSession", () => this.loaded.lib.C_OpenSession(this.slot, this.p.CKF_RW_SESSION | this.p.CKF_SERIAL_SESSION));
        this.openSessions++;
        return Promise.resolve(session);
      } catch (err) {
        return Promise.reject(hsmError(err, `token "${this.options.tokenLabel}": opening a session`));
      }
    }
    return new Promise((resolve) => {
      this.waiting.push(resolve);
    });
  }

  private release(session: Handle): void {
    const next = this.waiting.shift();
    if (next !== undefined) next(session);
    else this.idle.push(session);
  }

  /** Runs `fn` with a session of its own; failures become CustodyErrors naming `what`. */
  async withSession<T>(what: string, fn: (lib: Pkcs11Types.PKCS11, session: Handle) => T | Promise<T>): Promise<T> {
    const session = await this.acquire();
    try {
      return await fn(this.loaded.lib, session);
    } catch (err) {
      throw hsmError(err, what);
    } finally {
      this.release(session);
    }
  }

  /** Handles of the objects matching `template`. */
  find(template: Pkcs11Types.Template): Promise<Handle[]> {
    return this.withSession("finding objects", (lib, session) => {
      this.call("C_FindObjectsInit", () => {
        lib.C_FindObjectsInit(session, template);
      });
      try {
        const out: Handle[] = [];
        for (;;) {
          const batch = this.call("C_FindObjects", () => lib.C_FindObjects(session, 64));
          out.push(...batch);
          if (batch.length < 64) return out;
        }
      } finally {
        this.call("C_FindObjectsFinal", () => {
          lib.C_FindObjectsFinal(session);
        });
      }
    });
  }

  /** Reads attributes (byte values) of an object. */
  attributes(handle: Handle, types: readonly number[]): Promise<Buffer[]> {
    return this.withSession("reading attributes", (lib, session) =>
      this.call("C_GetAttributeValue", () =>
        lib.C_GetAttributeValue(
          session,
          handle,
          types.map((type) => ({ type })),
        ).map((a) => a.value),
      ),
    );
  }

  destroy(handle: Handle): Promise<void> {
    return this.withSession("destroying an object", (lib, session) => {
      this.call("C_DestroyObject", () => {
        lib.C_DestroyObject(session, handle);
      });
    });
  }

  /** Releases this opener's share; the last one closes the sessions (ending the login) and the module. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.refs--;
    if (this.refs > 0) return Promise.resolve();
    this.closed = true;
    tokens.delete(`${this.options.module}\u0000${this.options.tokenLabel}`);
    this.closeSessions();
    releaseModule(this.options.module, this.loaded);
    return Promise.resolve();
  }

  private closeSessions(): void {
    for (const session of this.idle.splice(0)) {
      try {
        this.loaded.lib.C_CloseSession(session);
      } catch {
        // Already gone with the module.
      }
    }
    this.openSessions = 0;
  }
}
