/** The `behaviour` section: defaults, a full example, and every kind of bad input refused with the field named. */
import { describe, expect, it } from "vitest";
import { DEFAULT_BEHAVIOUR_SETTINGS, parseBehaviourSettings, responseFor } from "../../src/anomaly/responses.js";
import { parseConfig } from "../../src/config/config.js";

const EXAMPLE = {
  enabled: true,
  responses: [
    { minScore: 50, action: "alert" },
    { minScore: 70, action: "step-up", for: "24h" },
    { minScore: 80, action: "throttle", for: "1h" },
    { minScore: 95, action: "suspend" },
  ],
  stepUp: { approvals: [{ group: "security", count: 1 }], minValue: "1000" },
  throttle: { perMinute: 6 },
  revokeGrace: "24h",
  webhook: { url: "https://siem.example/portcullis", timeout: "5s" },
  liquidity: { XYZUSDT: "25000", abcusdt: "1.50" },
};

function failure(value: unknown): { message: string; fields: Record<string, string> } {
  const r = parseBehaviourSettings(value);
  if (r.ok) throw new Error("parsed");
  expect(r.code).toBe("VALIDATION_FAILED");
  return { message: r.message, fields: { ...r.fields } };
}

describe("parseBehaviourSettings", () => {
  it("absent: the defaults (alert 50, step-up 70 for 24h, throttle 80 for 1h, suspend 95; record from 30; no webhook)", () => {
    const r = parseBehaviourSettings(undefined);
    expect(r.ok && r.value).toEqual(DEFAULT_BEHAVIOUR_SETTINGS);
    expect(DEFAULT_BEHAVIOUR_SETTINGS.responses.map((x) => [x.minScore, x.action, x.forMs])).toEqual([
      [50, "alert", null],
      [70, "step-up", 86_400_000],
      [80, "throttle", 3_600_000],
      [95, "suspend", null],
    ]);
    expect([29, 30, 49, 50, 70, 80, 94.9, 95, 100].map((s) => responseFor(DEFAULT_BEHAVIOUR_SETTINGS, s)?.action ?? null)).toEqual([
      null,
      "record",
      "record",
      "alert",
      "step-up",
      "throttle",
      "throttle",
      "suspend",
      "suspend",
    ]);
  });

  it("the documented example, durations in ms and decimals normalised", () => {
    const r = parseBehaviourSettings(EXAMPLE);
    if (!r.ok) throw new Error(r.message);
    expect(r.value.webhook).toEqual({ url: "https://siem.example/portcullis", timeoutMs: 5000 });
    expect(r.value.revokeGraceMs).toBe(86_400_000);
    expect(r.value.stepUp).toEqual({ approvals: [{ group: "security", count: 1 }], minValue: "1000" });
    expect(r.value.throttle).toEqual({ perMinute: 6 });
    expect({ ...r.value.liquidity }).toEqual({ XYZUSDT: "25000", ABCUSDT: "1.50" });
  });

  it("revoke is an action; rules are sorted by score", () => {
    const r = parseBehaviourSettings({ responses: [{ minScore: 99, action: "revoke" }, { minScore: 60, action: "alert" }], record: 101 });
    if (!r.ok) throw new Error(r.message);
    expect(r.value.responses.map((x) => x.action)).toEqual(["alert", "revoke"]);
    expect(responseFor(r.value, 59)).toBeNull();
  });

  it.each([
    [{ colour: "red" }, "behaviour.colour"],
    [{ enabled: "yes" }, "behaviour.enabled"],
    [[], "behaviour"],
    [{ responses: {} }, "behaviour.responses"],
    [{ responses: [{ minScore: 50, action: "explode" }] }, "behaviour.responses[0].action"],
    [{ responses: [{ action: "alert" }] }, "behaviour.responses[0].minScore"],
    [{ responses: [{ minScore: 101, action: "alert" }] }, "behaviour.responses[0].minScore"],
    [{ responses: [{ minScore: 50, action: "alert", for: "1h" }] }, "behaviour.responses[0].for"],
    [{ responses: [{ minScore: 50, action: "throttle", for: "soon" }] }, "behaviour.responses[0].for"],
    [{ responses: [{ minScore: 50, action: "alert", extra: 1 }] }, "behaviour.responses[0].extra"],
    [{ responses: [{ minScore: 50, action: "alert" }, { minScore: 60, action: "alert" }] }, "behaviour.responses[1].action"],
    [{ responses: [{ minScore: 50, action: "suspend" }, { minScore: 60, action: "alert" }] }, "behaviour.responses"],
    [{ record: 0 }, "behaviour.record"],
    [{ stepUp: { approvals: [] } }, "behaviour.stepUp.approvals"],
    [{ stepUp: { approvals: [{ group: "Security Team" }] } }, "behaviour.stepUp.approvals[0].group"],
    [{ stepUp: { approvals: [{ group: "security", count: 0 }] } }, "behaviour.stepUp.approvals[0].count"],
    [{ stepUp: { minValue: 1000 } }, "behaviour.stepUp.minValue"],
    [{ stepUp: { minValue: "-5" } }, "behaviour.stepUp.minValue"],
    [{ stepUp: { who: "me" } }, "behaviour.stepUp.who"],
    [{ throttle: { perMinute: 0 } }, "behaviour.throttle.perMinute"],
    [{ throttle: { perHour: 6 } }, "behaviour.throttle.perHour"],
    [{ revokeGrace: "forever" }, "behaviour.revokeGrace"],
    [{ webhook: { url: "ftp://x.example/" } }, "behaviour.webhook.url"],
    [{ webhook: { url: "https://user:pw@x.example/" } }, "behaviour.webhook.url"],
    [{ webhook: { url: "not a url" } }, "behaviour.webhook.url"],
    [{ webhook: { url: "https://x.example/", timeout: "10m" } }, "behaviour.webhook.timeout"],
    [{ webhook: { url: "https://x.example/", secret: "s" } }, "behaviour.webhook.secret"],
    [{ liquidity: { XYZUSDT: 25000 } }, "behaviour.liquidity.XYZUSDT"],
    [{ liquidity: { "bad name!": "1" } }, "behaviour.liquidity.bad name!"],
  ])("refuses %j, naming %s", (value, field) => {
    const f = failure(value);
    expect(Object.keys(f.fields)).toEqual([field]);
    expect(f.message.startsWith(field)).toBe(true);
  });

  it("never throws for any JSON value", () => {
    for (const v of [null, 0, "x", true, [1], { responses: [null] }, { responses: [[]] }, { stepUp: { approvals: [null] } }, { liquidity: [] }, { webhook: 5 }]) {
      expect(() => parseBehaviourSettings(v)).not.toThrow();
    }
  });
});

const BASE = { gateway: { upstream: "http://127.0.0.1:9000" }, routes: [{ method: "GET", path: "/api/v3/account", permission: "read" }] };

describe("the configuration file's behaviour section", () => {
  it("is parsed with the rest; absent, the defaults", () => {
    expect(parseConfig(BASE, "/tmp").behaviour).toEqual(DEFAULT_BEHAVIOUR_SETTINGS);
    expect(parseConfig({ ...BASE, behaviour: EXAMPLE }, "/tmp").behaviour.webhook?.url).toBe("https://siem.example/portcullis");
  });

  it("a bad field is CONFIG_INVALID naming it", () => {
    expect(() => parseConfig({ ...BASE, behaviour: { throttle: { perMinute: -1 } } }, "/tmp")).toThrow(/behaviour\.throttle\.perMinute must be an integer/);
    try {
      parseConfig({ ...BASE, behaviour: { unknown: 1 } }, "/tmp");
      expect.unreachable();
    } catch (err) {
      expect((err as { code: string }).code).toBe("CONFIG_INVALID");
      expect((err as Error).message).toContain("behaviour.unknown is not a known setting");
    }
  });
});
