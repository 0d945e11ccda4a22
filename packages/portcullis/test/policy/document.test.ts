/**
 * The policy document is parsed strictly: every problem is refused as VALIDATION_FAILED, with its
 * path (rule index and field) in `fields`; unknown members, numbers for amounts, unknown kinds,
 * bad durations and CIDRs, and a document without a final catch-all are all refused.
 */
import { describe, expect, it } from "vitest";
import { parseJson } from "../../src/contract/json.js";
import { canonicalDigest, canonicalJson } from "../../src/policy/canonical.js";
import { parsePolicyDocument } from "../../src/policy/document.js";

const ALLOW_ALL = { name: "rest", action: { type: "allow" } };

function refused(doc: unknown): Record<string, string> {
  const r = parsePolicyDocument(doc);
  if (r.ok) throw new Error("expected a refusal");
  expect(r.code).toBe("VALIDATION_FAILED");
  return { ...r.fields };
}

describe("parsing a policy document", () => {
  it("reads a full document", () => {
    const r = parsePolicyDocument(
      parseJson(
        JSON.stringify({
          description: "treasury",
          rules: [
            { name: "no new destinations", match: { kind: ["withdraw"], destination: "new" }, action: { type: "block", reason: "add it to the book first" } },
            {
              name: "big",
              match: { kind: ["withdraw"], asset: ["usdt", "BTC"], amount: { over: "1000" }, source: { notIn: ["10.0.0.0/8"] } },
              action: { type: "hold", approvals: [{ group: "treasury", count: 2 }, { group: "risk", count: 1 }], delay: "10m" },
            },
            { name: "velocity", match: { velocity: { window: "24h", per: "account", over: "5000" } }, action: { type: "hold", delay: "1h" } },
            { name: "young", match: { destination: { youngerThan: "7d" }, account: ["acme"], key: ["k1"] }, action: { type: "hold", approvals: [{ group: "ops", count: 1 }] } },
            { name: "rest", match: {}, action: { type: "allow" } },
          ],
        }),
      ),
    );
    if (!r.ok) throw new Error(r.message);
    expect(r.value.rules).toHaveLength(5);
    expect(r.value.rules[1]?.match.asset).toEqual(["USDT", "BTC"]);
    expect(r.value.rules[1]?.match.source).toEqual({ inside: false, blocks: ["10.0.0.0/8"] });
    expect(r.value.rules[1]?.action).toEqual({ type: "hold", approvals: [{ group: "treasury", count: 2 }, { group: "risk", count: 1 }], delayMs: 600_000 });
    expect(r.value.rules[2]?.match.velocity).toMatchObject({ windowMs: 86_400_000, per: "account" });
    expect(r.value.rules[3]?.match.destination).toEqual({ type: "youngerThan", ms: 7 * 86_400_000, text: "7d" });
    expect(r.value.rules[4]?.match).toEqual({});
  });

  it("a catch-all may leave its match out", () => {
    expect(parsePolicyDocument({ rules: [ALLOW_ALL] }).ok).toBe(true);
  });

  it.each([
    ["not an object", [], {}],
    ["no rules", {}, { rules: expect.stringMatching(/non-empty list/) as unknown }],
    ["an unknown top-level member", { rules: [ALLOW_ALL], version: 3 }, { "policy.version": expect.stringMatching(/unknown member/) as unknown }],
    ["an unknown rule member", { rules: [{ ...ALLOW_ALL, priority: 1 }] }, { "rules[0].priority": expect.stringMatching(/unknown member/) as unknown }],
    ["an unknown condition", { rules: [{ name: "a", match: { symbol: ["X"] }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.symbol": expect.stringMatching(/unknown/) as unknown }],
    ["an unknown kind", { rules: [{ name: "a", match: { kind: ["withdrawal"] }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.kind[0]": expect.stringMatching(/withdraw/) as unknown }],
    ["an empty kind list", { rules: [{ name: "a", match: { kind: [] }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.kind": expect.stringMatching(/non-empty/) as unknown }],
    ["a kind twice", { rules: [{ name: "a", match: { kind: ["withdraw", "withdraw"] }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.kind[1]": expect.stringMatching(/twice/) as unknown }],
    ["an amount as a JSON number", { rules: [{ name: "a", match: { amount: { over: 1000 } }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.amount.over": expect.stringMatching(/JSON number/) as unknown }],
    ["an amount with an exponent", { rules: [{ name: "a", match: { amount: { over: "1e3" } }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.amount.over": expect.stringMatching(/decimal/) as unknown }],
    ["an amount in asset units without an asset", { rules: [{ name: "a", match: { amount: { over: "1", unit: "asset" } }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.amount.unit": expect.stringMatching(/match.asset/) as unknown }],
    ["a bad unit", { rules: [{ name: "a", match: { amount: { over: "1", unit: "usd" } }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.amount.unit": expect.any(String) as unknown }],
    ["a bad duration", { rules: [{ name: "a", match: { velocity: { window: "1 day", per: "key", over: "1" } }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.velocity.window": expect.stringMatching(/duration/) as unknown }],
    ["a window over 30 days", { rules: [{ name: "a", match: { velocity: { window: "31d", per: "key", over: "1" } }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.velocity.window": expect.stringMatching(/30d/) as unknown }],
    ["velocity per something else", { rules: [{ name: "a", match: { velocity: { window: "1h", per: "ip", over: "1" } }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.velocity.per": expect.any(String) as unknown }],
    ["a bad destination", { rules: [{ name: "a", match: { destination: "old" }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.destination": expect.any(String) as unknown }],
    ["a bad CIDR", { rules: [{ name: "a", match: { source: ["10.0.0.0/33"] }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.source[0]": expect.stringMatching(/CIDR/) as unknown }],
    ["source with in and notIn", { rules: [{ name: "a", match: { source: { in: ["10.0.0.0/8"], notIn: ["10.1.0.0/16"] } }, action: { type: "allow" } }, ALLOW_ALL] }, { "rules[0].match.source": expect.any(String) as unknown }],
    ["an unknown action", { rules: [{ name: "a", action: { type: "deny" } }] }, { "rules[0].action.type": expect.any(String) as unknown }],
    ["a hold with nothing to wait for", { rules: [{ name: "a", action: { type: "hold" } }] }, { "rules[0].action": expect.stringMatching(/approvals, a delay, or both/) as unknown }],
    ["three tiers", { rules: [{ name: "a", action: { type: "hold", approvals: [{ group: "a", count: 1 }, { group: "b", count: 1 }, { group: "c", count: 1 }] } }] }, { "rules[0].action.approvals": expect.stringMatching(/one or two tiers/) as unknown }],
    ["two tiers of one group", { rules: [{ name: "a", action: { type: "hold", approvals: [{ group: "a", count: 1 }, { group: "a", count: 2 }] } }] }, { "rules[0].action.approvals[1].group": expect.stringMatching(/two groups/) as unknown }],
    ["a count of zero", { rules: [{ name: "a", action: { type: "hold", approvals: [{ group: "a", count: 0 }] } }] }, { "rules[0].action.approvals[0].count": expect.any(String) as unknown }],
    ["a block with a reason of the wrong type", { rules: [{ name: "a", action: { type: "block", reason: 5 } }] }, { "rules[0].action.reason": expect.any(String) as unknown }],
    ["a rule name twice", { rules: [{ name: "a", match: { kind: ["withdraw"] }, action: { type: "allow" } }, { name: "a", action: { type: "allow" } }] }, { "rules[1].name": expect.stringMatching(/twice/) as unknown }],
    ["no catch-all last", { rules: [{ name: "a", match: { kind: ["withdraw"] }, action: { type: "allow" } }] }, { "rules[0].match": expect.stringMatching(/catch-all/) as unknown }],
    ["a catch-all before the last rule", { rules: [ALLOW_ALL, { name: "b", action: { type: "allow" } }] }, { "rules[0].match": expect.stringMatching(/never be reached/) as unknown }],
  ])("refuses %s, naming the path", (_what, doc, fields) => {
    expect(refused(doc)).toMatchObject(fields);
  });

  it("reports every problem at once", () => {
    const fields = refused({ rules: [{ name: "", match: { kind: ["x"], amount: { over: 1 } }, action: { type: "hold" } }, { name: "z", match: { kind: ["withdraw"] }, action: { type: "allow" } }] });
    expect(Object.keys(fields).sort()).toEqual(["rules[0].action", "rules[0].match.amount.over", "rules[0].match.kind[0]", "rules[0].name", "rules[1].match"]);
  });

  it("a __proto__ member is an unknown member, never a condition", () => {
    const fields = refused(parseJson('{"rules":[{"name":"a","match":{"__proto__":{"kind":["withdraw"]}},"action":{"type":"allow"}}]}'));
    expect(fields).toHaveProperty(["rules[0].match.__proto__"]);
  });
});

describe("the canonical JSON (RFC 8785) and digest of a document", () => {
  it("sorts members by UTF-16 code units and writes no whitespace (RFC 8785 section 3.2.3's example)", () => {
    const input = { "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis" };
    const text = canonicalJson(input);
    const order = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33"];
    expect(text).toBe(`{${order.map((k) => `${JSON.stringify(k)}:${JSON.stringify(input[k as keyof typeof input])}`).join(",")}}`);
    expect(text.startsWith('{"\\r":"Carriage Return","1":"One",')).toBe(true);
    expect(canonicalJson({ b: [1, "x", { d: true, c: null }], a: 1.5 })).toBe('{"a":1.5,"b":[1,"x",{"c":null,"d":true}]}');
  });

  it("gives one digest whatever the order or spacing", () => {
    const a = canonicalDigest(JSON.parse('{"rules":[{"name":"r","action":{"type":"allow"}}]}'));
    const b = canonicalDigest(JSON.parse('{ "rules" : [ { "action" : { "type" : "allow" } , "name" : "r" } ] }'));
    expect(a).toBe(b);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
  });
});
