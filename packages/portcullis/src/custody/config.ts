import { isAbsolute, resolve } from "node:path";
import { type Invalid, type Result, invalid, ok } from "../errors/result.js";

/**
 * The `custody` section of the config file: where the key-encryption key lives, and where the
 * gateway's own signing keys live.
 *
 *   { "provider": "keyring" }                                  (the default: <dataDir>/keyring.json)
 *   { "provider": "keyring", "keyring": "/etc/portcullis/keyring.json" }
 *   { "provider": "pkcs11", "module": "/usr/lib/softhsm/libsofthsm2.so", "tokenLabel": "portcullis",
 *     "pinFile": "/etc/portcullis/hsm.pin" }                   (or "pinEnv": "PORTCULLIS_HSM_PIN")
 *
 * With PKCS#11, `signingKeys` is "pkcs11" (default: the session-token and audit-checkpoint keys are
 * generated in the token) or "envelope" (kept envelope-encrypted in the database, under the HSM's
 * KEK). `labelPrefix` (default "portcullis/") prefixes every object label Portcullis creates in
 * the token, so two deployments can share one token. Relative paths are resolved against the
 * config file's directory; `keyring` against the data directory.
 */
export type CustodyConfig =
  | { readonly provider: "keyring"; readonly keyring: string | null }
  | {
      readonly provider: "pkcs11";
      readonly module: string;
      readonly tokenLabel: string;
      readonly pin: { readonly file: string } | { readonly env: string };
      readonly labelPrefix: string;
      readonly signingKeys: "pkcs11" | "envelope";
    };

export const DEFAULT_CUSTODY: CustodyConfig = { provider: "keyring", keyring: null };

/** The default environment variable that holds the token's PIN. */
export const DEFAULT_PIN_ENV = "PORTCULLIS_HSM_PIN";

type Json = Record<string, unknown>;

/** A string setting: its value, undefined when absent, or an error. */
function text(o: Json, key: string): string | undefined | Invalid {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "") return invalid(`custody.${key} must be a non-empty string`);
  return v;
}

/** Validates the `custody` section; an error names the field. */
export function parseCustodyConfig(raw: unknown, baseDir: string): Result<CustodyConfig> {
  if (raw === undefined) return ok(DEFAULT_CUSTODY);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return invalid("custody must be an object");
  const o = raw as Json;
  const provider = o.provider ?? "keyring";
  const allowed =
    provider === "keyring" ? ["provider", "keyring"] : ["provider", "module", "tokenLabel", "pinFile", "pinEnv", "labelPrefix", "signingKeys"];
  if (provider !== "keyring" && provider !== "pkcs11") return invalid('custody.provider must be "keyring" or "pkcs11"');
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) return invalid(`custody.${k} is not a known setting for provider ${provider} (known: ${allowed.join(", ")})`);
  }
  const t = {} as Record<"keyring" | "module" | "tokenLabel" | "pinFile" | "pinEnv" | "labelPrefix", string | undefined>;
  for (const key of ["keyring", "module", "tokenLabel", "pinFile", "pinEnv", "labelPrefix"] as const) {
    const v = text(o, key);
    if (typeof v === "object") return v;
    t[key] = v;
  }
  if (provider === "keyring") return ok({ provider, keyring: t.keyring ?? null });
  const { module, tokenLabel, pinFile } = t;
  if (module === undefined) return invalid("custody.module is required: the PKCS#11 module's path, e.g. /usr/lib/softhsm/libsofthsm2.so");
  if (tokenLabel === undefined) return invalid("custody.tokenLabel is required: the label of the token that holds the KEK");
  if (tokenLabel.length > 32) return invalid("custody.tokenLabel must be at most 32 characters (a PKCS#11 token label)");
  if (pinFile !== undefined && t.pinEnv !== undefined) return invalid("custody: give pinFile or pinEnv, not both");
  const pinEnv = t.pinEnv ?? DEFAULT_PIN_ENV;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(pinEnv)) return invalid("custody.pinEnv must be an environment variable name");
  const labelPrefix = t.labelPrefix ?? "portcullis/";
  if (!/^[A-Za-z0-9._:/-]{1,32}$/.test(labelPrefix)) return invalid("custody.labelPrefix must be 1-32 characters of letters, digits and ._:/-");
  const signingKeys = o.signingKeys ?? "pkcs11";
  if (signingKeys !== "pkcs11" && signingKeys !== "envelope") return invalid('custody.signingKeys must be "pkcs11" or "envelope"');
  return ok({
    provider,
    module: isAbsolute(module) ? module : resolve(baseDir, module),
    tokenLabel,
    pin: pinFile !== undefined ? { file: resolve(baseDir, pinFile) } : { env: pinEnv },
    labelPrefix,
    signingKeys,
  });
}
