/**
 * Benchmark 21: an agent key's request against a plain Ed25519 key's, in process (docs/wallets.md).
 *
 * One core (embedded stores, as benchmark 1), three Ed25519 keys of one account allowed the same
 * route: a plain key, an agent approved by a wallet owner key (its chain: the owner key), and an
 * agent that agent delegated to (its chain: the owner key and its parent). Each batch pre-generates
 * (untimed) freshly signed `GET /api/v3/account` requests for each key, then times the pipeline
 * over them back to back, in an order that rotates from batch to batch. What an agent adds is the
 * key stage's check of its chain: a key-cache lookup per key above it. Target: agent / plain ≤ 1.2×
 * (median of per-batch ratios).
 */
import { generateKeyPairSync } from "node:crypto";
import { fileURLToPath } from "node:url";
import { setImmediate as turn } from "node:timers/promises";
import { generateKeyId } from "../packages/portcullis/dist/contract/ids.js";
import { createBenchCore } from "./core.js";
import { generate, timePipeline } from "./pipeline-bench.js";
import { Ed25519RequestSigner, SCOPES } from "./signing.js";
import { fmt, fmtRatio, median, pairRatios, quantile, table } from "./stats.js";

export const AGENT_BENCH_SETTINGS = {
  full: { batches: 120, batchSize: 1000, warmupBatches: 5 },
  quick: { batches: 6, batchSize: 200, warmupBatches: 1 },
};

export const AGENT_TARGETS = {
  /** An agent key's request costs at most this many times a plain Ed25519 key's, in process. */
  agentOverPlain: 1.2,
};

const OWNER_ADDRESS = "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826";
const KINDS = ["plain", "agent", "delegate"];

function ed25519() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return { privateKey, pem: publicKey.export({ type: "spki", format: "pem" }).toString(), x: publicKey.export({ format: "jwk" }).x };
}

/** Runs benchmark 21; returns µs per request per batch for each kind. */
export async function runAgentBench({ batches, batchSize, warmupBatches, progress = () => undefined }) {
  const clock = { ms: Date.now() };
  const plainKey = ed25519();
  const bench = await createBenchCore({
    now: () => clock.ms,
    keys: [
      { account: "bench", scopes: SCOPES, algorithm: "ed25519", publicKey: plainKey.pem },
      { account: "bench", scopes: SCOPES, wallet: OWNER_ADDRESS },
    ],
  });
  try {
    const ownerKey = bench.keys[1].id;
    const agent = ed25519();
    const delegate = ed25519();
    const agentId = generateKeyId("live");
    const delegateId = generateKeyId("live");
    const terms = { scopes: SCOPES, symbols: ["*"], maxOrderNotional: "", maxOrderQuantity: "", maxOpenNotional: "", limits: [], expiresAt: Math.floor(clock.ms / 1000) + 86_400 };
    const grant = (parent, ancestors, key) => ({ ownerAddress: OWNER_ADDRESS, ownerKey, parent, agentKey: `ed25519:${key.x}`, ancestors, depth: ancestors.length + 1, terms, digest: `0x${"0".repeat(64)}` });
    await bench.core.keys.registerAgents(
      [
        { id: agentId, account: "bench", label: "agent", publicKey: agent.pem, scopes: SCOPES, guardrails: null, limits: {}, expiresAt: terms.expiresAt * 1000, grant: grant(null, [], agent) },
        { id: delegateId, account: "bench", label: "delegate", publicKey: delegate.pem, scopes: SCOPES, guardrails: null, limits: {}, expiresAt: terms.expiresAt * 1000, grant: grant(agentId, [agentId], delegate) },
      ],
      [ownerKey],
      "bench",
    );
    const signers = {
      plain: new Ed25519RequestSigner(bench.keys[0].id, plainKey.privateKey),
      agent: new Ed25519RequestSigner(agentId, agent.privateKey),
      delegate: new Ed25519RequestSigner(delegateId, delegate.privateKey),
    };
    const series = { plain: [], agent: [], delegate: [] };
    for (let b = -warmupBatches; b < batches; b++) {
      clock.ms += 1000;
      const created = Math.floor(clock.ms / 1000);
      const requests = Object.fromEntries(KINDS.map((k) => [k, generate(signers[k], "GET", created, batchSize).requests]));
      const order = KINDS.map((_, i) => KINDS[(i + b + warmupBatches) % KINDS.length]);
      for (const kind of order) {
        const us = await timePipeline(bench.core, requests[kind]);
        if (b >= 0) series[kind].push(us);
      }
      if (b >= 0 && (b + 1) % 20 === 0) progress(`agents: ${b + 1}/${batches} batches`);
      await turn();
    }
    return { settings: { batches, batchSize, warmupBatches }, series };
  } finally {
    await bench.close();
  }
}

const verdict = (ok) => (ok ? "PASS" : "**FAIL**");

export function agentSection(result) {
  const { series, settings } = result;
  const agentRatios = pairRatios(series.agent, series.plain);
  const delegateRatios = pairRatios(series.delegate, series.plain);
  const agentRatio = median(agentRatios);
  const delegateRatio = median(delegateRatios);
  const row = (kind) => [kind, fmt(median(series[kind])), fmt(quantile(series[kind], 0.1)), fmt(quantile(series[kind], 0.9))];
  const summary = [
    ["Agent key vs plain Ed25519 key, in process (`GET /api/v3/account`): median ratio", fmtRatio(agentRatios), `≤ ${AGENT_TARGETS.agentOverPlain}×`, verdict(agentRatio <= AGENT_TARGETS.agentOverPlain)],
    ["Delegated agent (depth 2) vs plain Ed25519 key, in process: median ratio", fmtRatio(delegateRatios), `≤ ${AGENT_TARGETS.agentOverPlain}×`, verdict(delegateRatio <= AGENT_TARGETS.agentOverPlain)],
  ];
  const text = [
    "## 21. Agent keys: an agent's request against a plain key's",
    "",
    `One core (embedded stores, no limits), three Ed25519 keys of one account on the same route: a plain key, an agent approved by a wallet owner key, and an agent it delegated to. ${settings.batches} batches of ${settings.batchSize} freshly signed \`GET /api/v3/account\` requests per key (after ${settings.warmupBatches} warm-up batches), timed back to back in an order that rotates per batch. An agent's request costs what the plain key's does plus the key stage's check of its chain: one key-cache lookup per key above it (the owner key; and the parent for the delegate).`,
    "",
    table(["Key", "µs per request (median)", "p10", "p90"], KINDS.map(row)),
    "",
    `Per-batch ratios: agent / plain ${fmtRatio(agentRatios)}, delegate / plain ${fmtRatio(delegateRatios)}; the chain check adds ${fmt(median(series.agent) - median(series.plain))} µs (agent) and ${fmt(median(series.delegate) - median(series.plain))} µs (delegate) to the medians.`,
    "",
  ];
  return { summary, text, failures: 0 };
}

// Alone: node bench/agent-bench.js [--quick]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const progress = (line) => process.stderr.write(`${line}\n`);
  const section = agentSection(await runAgentBench({ ...(quick ? AGENT_BENCH_SETTINGS.quick : AGENT_BENCH_SETTINGS.full), progress }));
  process.stdout.write(`${table(["Benchmark", "Figure", "Target", "Result"], section.summary)}\n\n${section.text.join("\n")}\n`);
}
