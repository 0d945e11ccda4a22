/**
 * Attenuation, property-based: a link that only takes away passes `narrows`; any single widening
 * (a scope, a symbol, "*", a cap raised or dropped, a limit raised or dropped, a later expiry) is
 * found; and in signed chains of any depth a widening at any link is refused at that link, while
 * a chain that only narrows is accepted and its last link narrows its first.
 */
import fc from "fast-check";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import {
  type AgentLimit,
  type AgentSigningKey,
  type AgentTerms,
  agentKeyId,
  CAP_FIELDS,
  delegatedKeyId,
  ed25519AgentKey,
  narrows,
  signAgentApproval,
  signDelegation,
  verifyAgentChain,
} from "../src/entry/index.js";

const NOW_S = 1_796_558_400; // 2026-12-06T12:00:00Z
const SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "ADAUSDT"];
const LIMIT_NAMES = ["orders", "weight", "cancels", "queries"];

function decimal(coefficient: bigint, scale: number): string {
  const digits = coefficient.toString().padStart(scale + 1, "0");
  return scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

const capArb = fc.oneof(
  fc.constant(""),
  fc.tuple(fc.bigInt({ min: 1n, max: 10n ** 9n }), fc.integer({ min: 0, max: 4 })).map(([c, s]) => decimal(c, s)),
);

const termsArb: fc.Arbitrary<AgentTerms> = fc.record({
  scopes: fc.subarray(["read", "trade"] as const, { minLength: 1 }),
  symbols: fc.oneof(fc.constant(["*"]), fc.subarray(SYMBOLS)),
  maxOrderNotional: capArb,
  maxOrderQuantity: capArb,
  maxOpenNotional: capArb,
  limits: fc.subarray(LIMIT_NAMES).chain((names) => fc.tuple(...names.map((name) => fc.integer({ min: 1, max: 1000 }).map((value) => ({ name, value }))))),
  expiresAt: fc.integer({ min: NOW_S + 3600, max: NOW_S + 300 * 86_400 }),
});

/** A cap no larger than `above` ("" above allows any). */
function narrowerCap(above: string): fc.Arbitrary<string> {
  if (above === "") return capArb;
  const [int = "", frac = ""] = above.split(".");
  const coefficient = BigInt(int + frac);
  return fc.bigInt({ min: 1n, max: coefficient }).map((c) => decimal(c, frac.length));
}

/** Terms that take away only. */
function narrowerTerms(parent: AgentTerms): fc.Arbitrary<AgentTerms> {
  const anySymbol = parent.symbols[0] === "*";
  return fc.record({
    scopes: fc.subarray([...parent.scopes], { minLength: 1 }),
    symbols: anySymbol ? fc.oneof(fc.constant(["*"]), fc.subarray(SYMBOLS)) : fc.subarray([...parent.symbols]),
    maxOrderNotional: narrowerCap(parent.maxOrderNotional),
    maxOrderQuantity: narrowerCap(parent.maxOrderQuantity),
    maxOpenNotional: narrowerCap(parent.maxOpenNotional),
    limits: fc
      .tuple(
        fc.tuple(...parent.limits.map((l) => fc.integer({ min: 1, max: l.value }).map((value) => ({ name: l.name, value })))),
        fc.subarray(LIMIT_NAMES.filter((n) => !parent.limits.some((l) => l.name === n))),
      )
      .chain(([kept, added]) => fc.tuple(...added.map((name) => fc.integer({ min: 1, max: 1000 }).map((value) => ({ name, value })))).map((more): AgentLimit[] => [...kept, ...more])),
    expiresAt: fc.integer({ min: NOW_S + 60, max: parent.expiresAt }),
  });
}

/** The widenings available against `parent`, each applied to a child that otherwise narrows. */
function widened(parent: AgentTerms, child: AgentTerms): fc.Arbitrary<AgentTerms> {
  const options: fc.Arbitrary<AgentTerms>[] = [fc.constant({ ...child, expiresAt: parent.expiresAt + 1 })];
  if (parent.scopes.length === 1) options.push(fc.constant({ ...child, scopes: ["read", "trade"] }));
  if (parent.symbols[0] !== "*") {
    options.push(fc.constant({ ...child, symbols: ["*"] }));
    const missing = SYMBOLS.filter((s) => !parent.symbols.includes(s));
    if (missing.length > 0) options.push(fc.constantFrom(...missing).map((s) => ({ ...child, symbols: [...child.symbols, s] })));
  }
  for (const field of CAP_FIELDS) {
    const above = parent[field];
    if (above === "") continue;
    options.push(fc.constant({ ...child, [field]: "" }));
    options.push(fc.constant({ ...child, [field]: String(BigInt(above.split(".")[0] ?? "0") + 1n) }));
  }
  for (const l of parent.limits) {
    options.push(fc.constant({ ...child, limits: child.limits.filter((c) => c.name !== l.name) }));
    options.push(fc.constant({ ...child, limits: child.limits.map((c) => (c.name === l.name ? { name: c.name, value: l.value + 1 } : c)) }));
  }
  return fc.oneof(...options);
}

describe("narrows", () => {
  it("passes every child that only takes away", () => {
    fc.assert(
      fc.property(
        termsArb.chain((p) => narrowerTerms(p).map((c) => [p, c] as const)),
        ([parent, child]) => narrows(parent, child) === null,
      ),
      { numRuns: 2000 },
    );
  });

  it("finds any single widening", () => {
    fc.assert(
      fc.property(
        termsArb.chain((p) => narrowerTerms(p).chain((c) => widened(p, c).map((w) => [p, w] as const))),
        ([parent, child]) => narrows(parent, child) !== null,
      ),
      { numRuns: 2000 },
    );
  });
});

describe("signed chains", () => {
  const owner = privateKeyToAccount("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318");
  const venue = { chainId: 1, domain: "api.venue.example", uri: "https://api.venue.example" };

  interface Plan {
    readonly terms: readonly AgentTerms[];
    /** Index of the widening link, or -1. */
    readonly widenAt: number;
  }

  /** 1 to 6 links; each narrows the one above, except possibly one that widens. */
  const planArb: fc.Arbitrary<Plan> = fc.integer({ min: 1, max: 6 }).chain((length) =>
    fc.integer({ min: -1, max: length - 1 }).chain((w) => {
      const widenAt = w === 0 ? -1 : w;
      let arb: fc.Arbitrary<AgentTerms[]> = termsArb.map((t) => [t]);
      for (let i = 1; i < length; i++) {
        const index = i;
        arb = arb.chain((list) => {
          const parent = list[list.length - 1] as AgentTerms;
          const next = narrowerTerms(parent);
          return (index === widenAt ? next.chain((c) => widened(parent, c)) : next).map((t) => [...list, t]);
        });
      }
      return arb.map((terms) => ({ terms, widenAt }));
    }),
  );

  async function agent(): Promise<{ key: AgentSigningKey; text: string }> {
    const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]));
    return { key: { algorithm: "ed25519", privateKey: pair.privateKey }, text: await ed25519AgentKey(pair.publicKey) };
  }

  it("refuse a widening at any depth, at that link, and accept a chain that only narrows", async () => {
    await fc.assert(
      fc.asyncProperty(planArb, async ({ terms, widenAt }) => {
        const agents = await Promise.all(terms.map(() => agent()));
        const at = <T>(list: readonly T[], i: number): T => {
          const item = list[i];
          if (item === undefined) throw new Error(`no item ${i}`);
          return item;
        };
        const chain: unknown[] = [];
        const first = await signAgentApproval(owner, { venue, account: "acct", agentKey: at(agents, 0).text, terms: at(terms, 0), issuedAt: NOW_S });
        chain.push(first);
        let parentId = agentKeyId("test", 1, owner.address, first.approval.nonce);
        for (let i = 1; i < terms.length; i++) {
          const link = await signDelegation(at(agents, i - 1).key, { venue, parent: parentId, agentKey: at(agents, i).text, terms: at(terms, i), issuedAt: NOW_S });
          chain.push(link);
          parentId = delegatedKeyId("test", parentId, link.delegation.nonce);
        }
        const result = await verifyAgentChain(chain, { venue, environment: "test", owner: owner.address, now: NOW_S * 1000 });
        if (widenAt === -1) {
          expect(result.ok).toBe(true);
          if (result.ok) {
            expect(result.value.links.at(-1)?.id).toBe(parentId);
            // Narrowing is transitive: the last link allows nothing the owner did not.
            expect(narrows(at(terms, 0), at(terms, terms.length - 1))).toBeNull();
          }
        } else {
          expect(result.ok ? "ok" : `${result.code}@${result.link}`).toBe(`AGENT_WIDENED@${widenAt}`);
        }
      }),
      { numRuns: 60 },
    );
  }, 120_000);
});
