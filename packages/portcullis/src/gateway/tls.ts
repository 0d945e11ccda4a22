import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { type SecureContextOptions, type Server as TlsServer, type TlsOptions, createSecureContext } from "node:tls";
import { OperatorError } from "../errors/catalogue.js";
import type { Logger } from "../log/logger.js";

/**
 * HTTPS for the gateway and the admin API (docs/tls.md): the `gateway.tls` and `admin.tls`
 * settings, the certificate and key loaded and checked at startup, and reloaded in place
 * (`server.setSecureContext`) without dropping a connection. TLS 1.2 is the minimum and 1.3 is
 * negotiated whenever the client has it; Node's cipher list; no renegotiation.
 */

/** Mutual TLS: whether the listener asks clients for a certificate, and whether it needs one. */
export const CLIENT_AUTH = ["none", "optional", "required"] as const;
export type ClientAuth = (typeof CLIENT_AUTH)[number];

export interface TlsSettings {
  /** The server certificate (PEM; the chain after it). */
  readonly certFile: string;
  /** Its private key (PEM). */
  readonly keyFile: string;
  /** The CA (PEM) client certificates must chain to; required unless `clientAuth` is "none". */
  readonly caFile: string | null;
  /**
   * "none": no client certificate is asked for. "optional": one is asked for; a client without one
   * (or with one that does not chain to `caFile`) is served, with no certificate. "required": a
   * client without a certificate that chains to `caFile` fails the handshake.
   */
  readonly clientAuth: ClientAuth;
  /** How often the files are checked for a change (ms), or null: only on SIGHUP (`reload()`). */
  readonly reloadIntervalMs: number | null;
}

/** The lowest TLS version either listener speaks; TLS 1.3 is the highest, and preferred. */
export const TLS_MIN_VERSION = "TLSv1.2";

/** The default of `reloadInterval`: the files are looked at every 5 s (three stat calls). */
export const DEFAULT_TLS_RELOAD_INTERVAL_MS = 5_000;

const TLS_FIELDS = ["cert", "key", "ca", "clientAuth", "reloadInterval"] as const;

/**
 * The `tls` object of a listener (`where`: "gateway.tls" or "admin.tls"), or null when absent.
 * Paths are resolved against `baseDir`; the files are read at startup, not here. `duration`
 * parses "5s"-style durations (the config's own parser). Throws nothing: a problem is the message.
 */
export function parseTlsSettings(
  raw: unknown,
  where: string,
  baseDir: string,
  duration: (text: string) => number | null,
): { readonly ok: true; readonly value: TlsSettings | null } | { readonly ok: false; readonly message: string } {
  if (raw === undefined) return { ok: true, value: null };
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return { ok: false, message: `${where} must be an object { "cert": PATH, "key": PATH, "ca"?: PATH, "clientAuth"?: "none" | "optional" | "required" }` };
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(TLS_FIELDS as readonly string[]).includes(k)) return { ok: false, message: `${where}.${k} is not a known setting (known: ${TLS_FIELDS.join(", ")})` };
  }
  const path = (k: "cert" | "key" | "ca"): string | null | false => {
    const v = o[k];
    if (v === undefined) return null;
    if (typeof v !== "string" || v === "" || v.includes("\0")) return false;
    return resolve(baseDir, v);
  };
  const certFile = path("cert");
  const keyFile = path("key");
  const caFile = path("ca");
  if (certFile === null || certFile === false) return { ok: false, message: `${where}.cert is required: the path of the server certificate (PEM)` };
  if (keyFile === null || keyFile === false) return { ok: false, message: `${where}.key is required: the path of the certificate's private key (PEM)` };
  if (caFile === false) return { ok: false, message: `${where}.ca must be the path of a CA certificate file (PEM)` };
  const clientAuth = o.clientAuth ?? "none";
  if (typeof clientAuth !== "string" || !(CLIENT_AUTH as readonly string[]).includes(clientAuth)) {
    return { ok: false, message: `${where}.clientAuth must be "none", "optional" or "required"` };
  }
  if (clientAuth !== "none" && caFile === null) {
    return { ok: false, message: `${where}.ca is required with clientAuth "${clientAuth}": the CA client certificates must chain to` };
  }
  if (clientAuth === "none" && caFile !== null) {
    return { ok: false, message: `${where}.ca is only used with clientAuth "optional" or "required"` };
  }
  let reloadIntervalMs: number | null = DEFAULT_TLS_RELOAD_INTERVAL_MS;
  const interval = o.reloadInterval;
  if (interval === "off") reloadIntervalMs = null;
  else if (interval !== undefined) {
    const ms = typeof interval === "string" ? duration(interval) : null;
    if (ms === null || ms < 1_000 || ms > 3_600_000) return { ok: false, message: `${where}.reloadInterval must be a duration from "1s" to "1h", or "off" (reload on SIGHUP only)` };
    reloadIntervalMs = ms;
  }
  return { ok: true, value: { certFile, keyFile, caFile, clientAuth: clientAuth as ClientAuth, reloadIntervalMs } };
}

/** A certificate, key or CA file that cannot be used (TLS_MATERIAL_INVALID, at startup). */
export class TlsMaterialError extends OperatorError<"TLS_MATERIAL_INVALID"> {
  override name = "TlsMaterialError";

  constructor(message: string) {
    super("TLS_MATERIAL_INVALID", message);
  }
}

/** What identifies one version of the files: a change of any is a reason to reload. */
function fileSignature(settings: TlsSettings): string {
  const files = [settings.certFile, settings.keyFile, ...(settings.caFile === null ? [] : [settings.caFile])];
  return files
    .map((file) => {
      try {
        const st = statSync(file);
        return `${st.ino}:${st.size}:${st.mtimeMs}`;
      } catch (err) {
        return `missing:${(err as NodeJS.ErrnoException).code ?? "?"}`;
      }
    })
    .join("|");
}

/** The name of an error, never its text beyond Node's own message (which never quotes the PEM). */
function reason(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}

interface Loaded {
  readonly context: SecureContextOptions;
  readonly fingerprint256: string;
  readonly validTo: string;
}

/**
 * Reads and checks the files: the certificate and CA parse as X.509, and the key is the
 * certificate's (createSecureContext fails on a mismatch). Throws TlsMaterialError naming the
 * file and the reason (never the file's content).
 */
function load(settings: TlsSettings, where: string): Loaded {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new TlsMaterialError(`${where}: cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
    }
  };
  const cert = read(settings.certFile, "certificate");
  const key = read(settings.keyFile, "private key");
  const ca = settings.caFile === null ? undefined : read(settings.caFile, "CA certificate");
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new TlsMaterialError(`${where}: the certificate ${settings.certFile} is not a PEM certificate (${reason(err)})`);
  }
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw new TlsMaterialError(`${where}: the CA certificate ${settings.caFile ?? ""} is not a PEM certificate (${reason(err)})`);
    }
  }
  const context: SecureContextOptions = { cert, key, ...(ca === undefined ? {} : { ca }), minVersion: TLS_MIN_VERSION };
  try {
    createSecureContext(context);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    const what = code.includes("KEY_VALUES_MISMATCH") ? "does not match the certificate" : "is not a usable PEM private key";
    throw new TlsMaterialError(`${where}: the private key ${settings.keyFile} ${what} (${code === "" ? "error" : code})`);
  }
  // Readable by its owner (and, as certbot's ssl-cert setups do, a group), never by every user.
  let mode: number;
  try {
    mode = statSync(settings.keyFile).mode;
  } catch (err) {
    throw new TlsMaterialError(`${where}: cannot read the private key ${settings.keyFile}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  }
  if ((mode & 0o007) !== 0) {
    throw new TlsMaterialError(`${where}: the private key ${settings.keyFile} is open to every user (mode ${(mode & 0o777).toString(8).padStart(4, "0")}): chmod 600, or 640 for a group the gateway runs in`);
  }
  return { context, fingerprint256: x509.fingerprint256, validTo: x509.validTo };
}

/**
 * One listener's TLS: its options for `https.createServer`, and its reload. Built at startup (a
 * bad file stops the start: TlsMaterialError); `attach` gives it the server whose context a
 * reload replaces. Connections already open keep the context they were made with; new handshakes
 * get the new one.
 */
export class TlsCredentials {
  private current: Loaded;
  private signature: string;
  private failedSignature: string | null = null;
  private server: TlsServer | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly settings: TlsSettings,
    /** The listener, for errors and logs: "gateway.tls" or "admin.tls". */
    readonly where: string,
    private readonly logger: Logger | null = null,
  ) {
    this.signature = fileSignature(settings);
    this.current = load(settings, where);
  }

  /** The served certificate's SHA-256 fingerprint (hex with colons, as `openssl x509 -fingerprint` shows it). */
  get fingerprint256(): string {
    return this.current.fingerprint256;
  }

  /** The options of `https.createServer`: the context, and what mutual TLS asks of clients. */
  serverOptions(): TlsOptions {
    const clientAuth = this.settings.clientAuth;
    return {
      ...this.current.context,
      honorCipherOrder: true,
      requestCert: clientAuth !== "none",
      rejectUnauthorized: clientAuth === "required",
    };
  }

  /** The server a reload updates; starts the file poll (`reloadIntervalMs`) if there is one. */
  attach(server: TlsServer): void {
    this.server = server;
    const interval = this.settings.reloadIntervalMs;
    if (interval !== null && this.timer === null) {
      this.timer = setInterval(() => {
        this.reloadIfChanged();
      }, interval);
      this.timer.unref();
    }
  }

  /** The poll's step: reloads when a file changed since the last reload (or the last failed one). */
  reloadIfChanged(): boolean {
    const signature = fileSignature(this.settings);
    if (signature === this.signature || signature === this.failedSignature) return false;
    return this.reload(signature);
  }

  /**
   * Reads the files again and, when they are good, serves them to every new handshake. A bad file
   * (not PEM, a key of another certificate, missing) keeps the certificate in service and logs
   * a warning with code TLS_RELOAD_FAILED; the reason names the file, never its content.
   */
  reload(signature = fileSignature(this.settings)): boolean {
    let next: Loaded;
    try {
      next = load(this.settings, this.where);
    } catch (err) {
      this.failedSignature = signature;
      const message = err instanceof TlsMaterialError ? err.message : reason(err);
      this.logger?.warn({ code: "TLS_RELOAD_FAILED", listener: this.where, reason: message }, "TLS reload failed: the previous certificate is still served");
      return false;
    }
    try {
      this.server?.setSecureContext(next.context);
    } catch (err) {
      this.failedSignature = signature;
      this.logger?.warn({ code: "TLS_RELOAD_FAILED", listener: this.where, reason: reason(err) }, "TLS reload failed: the previous certificate is still served");
      return false;
    }
    this.current = next;
    this.signature = signature;
    this.failedSignature = null;
    this.logger?.info({ listener: this.where, fingerprint256: next.fingerprint256, validTo: next.validTo }, "TLS certificate reloaded");
    return true;
  }

  /** Stops the poll. */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
