import { isAbsolute, resolve } from "node:path";
import { type Result, invalid, ok } from "../errors/result.js";
import { type AuditSettings, REQUEST_AUDIT_MODES, type RequestAuditMode } from "./log.js";

/**
 * The config file's `audit` section (docs/configuration.md):
 *
 *   "audit": { "requests": "all", "batchWindowMs": 50, "batchEntries": 2000, "bufferEntries": 100000,
 *              "checkpointIntervalMs": 10000, "lockTimeoutMs": 1000, "spillDir": "audit-spill" }
 *
 * Every field is optional. Returns the settings, or a failure whose message names the bad field.
 */
export interface AuditConfig extends Required<Omit<AuditSettings, "spillDir">> {
  readonly spillDir: string;
}

const KNOWN = ["requests", "batchWindowMs", "batchEntries", "bufferEntries", "checkpointIntervalMs", "lockTimeoutMs", "spillDir"];

export function parseAuditConfig(raw: unknown, dataDir: string): Result<AuditConfig> {
  const checked = check(raw, dataDir);
  return typeof checked === "string" ? invalid(checked) : ok(checked);
}

/** The settings, or the problem with them. */
function check(raw: unknown, dataDir: string): AuditConfig | string {
  if (raw === undefined) raw = {};
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return "audit must be an object";
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN.includes(k)) return `audit.${k} is not a known setting (known: ${KNOWN.join(", ")})`;
  const int = (key: string, fallback: number, min: number, max: number): number | string => {
    const v = o[key];
    if (v === undefined) return fallback;
    return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max ? v : `audit.${key} must be an integer from ${min} to ${max}`;
  };
  const requests = o.requests ?? "all";
  if (typeof requests !== "string" || !(REQUEST_AUDIT_MODES as readonly string[]).includes(requests)) {
    return `audit.requests must be one of ${REQUEST_AUDIT_MODES.map((m) => `"${m}"`).join(", ")}`;
  }
  const batchWindowMs = int("batchWindowMs", 50, 1, 60_000);
  const bufferEntries = int("bufferEntries", 100_000, 1, 10_000_000);
  if (typeof bufferEntries === "string") return bufferEntries;
  const batchEntries = int("batchEntries", Math.min(2000, bufferEntries), 1, bufferEntries);
  const checkpointIntervalMs = int("checkpointIntervalMs", 10_000, 0, 86_400_000);
  const lockTimeoutMs = int("lockTimeoutMs", 1000, 0, 60_000);
  for (const v of [batchWindowMs, batchEntries, checkpointIntervalMs, lockTimeoutMs]) if (typeof v === "string") return v;
  const spill = o.spillDir ?? "audit-spill";
  if (typeof spill !== "string" || spill === "") return "audit.spillDir must be a non-empty string (a directory, relative to dataDir)";
  return {
    requests: requests as RequestAuditMode,
    batchWindowMs: batchWindowMs as number,
    batchEntries: batchEntries as number,
    bufferEntries,
    checkpointIntervalMs: checkpointIntervalMs as number,
    lockTimeoutMs: lockTimeoutMs as number,
    spillDir: isAbsolute(spill) ? spill : resolve(dataDir, spill),
  };
}
