/**
 * The config file's `audit` section: defaults, and every bad value refused with a message naming
 * the field.
 */
import { describe, expect, it } from "vitest";
import { parseAuditConfig } from "../../src/audit/config.js";
import { ConfigError, parseConfig } from "../../src/config/config.js";

const base = { gateway: { upstream: "http://127.0.0.1:9000" }, routes: [{ method: "GET", path: "/x", permission: "public" }] };

describe("the audit config section", () => {
  it("has defaults for everything, and resolves the spill directory against dataDir", () => {
    const config = parseConfig({ ...base, dataDir: "/srv/pc" }, "/etc");
    expect(config.audit).toEqual({
      requests: "all",
      batchWindowMs: 50,
      batchEntries: 2000,
      bufferEntries: 100_000,
      checkpointIntervalMs: 10_000,
      lockTimeoutMs: 1000,
      spillDir: "/srv/pc/audit-spill",
    });
    expect(parseAuditConfig({ spillDir: "/var/spill", requests: "deny", bufferEntries: 10 }, "/srv/pc")).toMatchObject({ ok: true, value: { spillDir: "/var/spill", requests: "deny", batchEntries: 10 } });
    expect(parseAuditConfig({ requests: "some" }, "/srv/pc")).toMatchObject({ ok: false, code: "VALIDATION_FAILED", message: expect.stringMatching(/^audit\.requests must be one of/) as unknown });
  });

  it("refuses bad values, naming the field", () => {
    const cases: [unknown, RegExp][] = [
      [[], /^audit must be an object$/],
      [{ requests: "some" }, /^audit\.requests must be one of "all", "deny", "none"$/],
      [{ batchWindowMs: 0 }, /^audit\.batchWindowMs must be an integer from 1 to 60000$/],
      [{ batchEntries: 11, bufferEntries: 10 }, /^audit\.batchEntries must be an integer from 1 to 10$/],
      [{ bufferEntries: 1.5 }, /^audit\.bufferEntries must be an integer/],
      [{ checkpointIntervalMs: -1 }, /^audit\.checkpointIntervalMs must be an integer from 0 to 86400000$/],
      [{ lockTimeoutMs: "1s" }, /^audit\.lockTimeoutMs must be an integer/],
      [{ spillDir: "" }, /^audit\.spillDir must be a non-empty string/],
      [{ batchSize: 10 }, /^audit\.batchSize is not a known setting \(known: requests, /],
    ];
    for (const [audit, message] of cases) {
      expect(() => parseConfig({ ...base, audit }, "/etc")).toThrow(ConfigError);
      expect(() => parseConfig({ ...base, audit }, "/etc")).toThrow(message);
    }
  });
});
