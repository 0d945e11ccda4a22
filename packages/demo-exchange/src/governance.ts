import { createHmac, generateKeyPairSync } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunningPortcullis } from "portcullis";

/**
 * The demo's high-value policy (docs/policy.md, docs/approvals.md): three approvers with Ed25519
 * key files in the data directory, a withdrawal policy, an address book entry still cooling down,
 * and one withdrawal made at start that the policy holds, so `npm start` shows the whole flow:
 * held at once, approved by two people on the command line, released exactly once.
 */

/** The treasury group: withdrawals over 1,000 USDT-equivalent or to a new address need 2 of them. */
export const DEMO_APPROVERS = ["alice", "bob", "carol"] as const;
export const DEMO_APPROVER_GROUP = "treasury";

/** How long a new withdrawal address cools down in the demo (the default is 24 h). */
export const DEMO_ADDRESS_COOLDOWN = "60s";

/** The destination the demo's held withdrawal goes to (in the address book, still cooling down). */
export const DEMO_ADDRESS = "TDemoColdWallet1111111111111111111";

/** The demo policy, version 1: first match wins; the last rule is the catch-all. */
export const DEMO_POLICY = {
  description: "demo withdrawal policy",
  rules: [
    {
      name: "daily cap",
      match: { kind: ["withdraw"], velocity: { window: "24h", per: "account", over: "20000" } },
      action: { type: "block", reason: "over the account's daily withdrawal cap (20,000 USDT-equivalent)" },
    },
    { name: "new destination", match: { kind: ["withdraw"], destination: "new" }, action: { type: "hold", approvals: [{ group: DEMO_APPROVER_GROUP, count: 2 }] } },
    { name: "large withdrawal", match: { kind: ["withdraw"], amount: { over: "1000" } }, action: { type: "hold", approvals: [{ group: DEMO_APPROVER_GROUP, count: 2 }] } },
    { name: "policy changes", match: { kind: ["policy.change"] }, action: { type: "hold", approvals: [{ group: DEMO_APPROVER_GROUP, count: 2 }] } },
    { name: "everything else", action: { type: "allow" } },
  ],
} as const;

export interface DemoApprover {
  /** The approver's Ed25519 private key (PKCS#8 PEM, mode 0600): `approvals approve ID --key FILE`. */
  readonly keyFile: string;
}

export interface HeldWithdrawal {
  readonly operationId: string;
  /** The policy rule that held it. */
  readonly rule: string;
  readonly amount: string;
  readonly asset: string;
  readonly address: string;
}

export interface DemoGovernance {
  readonly approvers: Record<string, DemoApprover>;
  readonly policyVersion: number;
  /** The withdrawal made at start and held by the policy, or null if the policy did not hold it. */
  readonly held: HeldWithdrawal | null;
}

/** What the set-up needs of a running demo (stack.ts's `DemoStack` has it). */
export interface GovernedStack {
  readonly running: RunningPortcullis;
  readonly dataDir: string;
  /** The gateway's URL. */
  readonly gateway: string;
}

const DEMO_INITIATOR = { actor: "demo", account: null, keyId: null, client: null, owner: null } as const;

/**
 * Registers the approvers (key files under `<data>/approvers/`), applies the demo policy, adds
 * the demo address to the treasury account's book, and makes one withdrawal with the treasury
 * key (Binance-signed, as a bot would) that the policy holds.
 */
export async function setUpDemoGovernance(stack: GovernedStack, treasury: { readonly id: string; readonly secret: string; readonly account: string }): Promise<DemoGovernance> {
  const { governance, holds } = stack.running;
  const dir = join(stack.dataDir, "approvers");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const approvers: Record<string, DemoApprover> = {};
  for (const name of DEMO_APPROVERS) {
    const pair = generateKeyPairSync("ed25519");
    const keyFile = join(dir, `${name}.pem`);
    writeFileSync(keyFile, pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(), { mode: 0o600 });
    await holds.addApprover(name, [DEMO_APPROVER_GROUP], pair.publicKey.export({ type: "spki", format: "pem" }).toString(), "demo");
    approvers[name] = { keyFile };
  }
  // Version 0 (allow everything) judges the first version: it is applied at once.
  const applied = await governance.policy.apply(DEMO_POLICY, DEMO_INITIATOR);
  if (applied.state !== "applied") throw new Error("the demo policy was not applied");
  const added = await governance.addresses.add({ account: treasury.account, asset: "USDT", address: DEMO_ADDRESS, network: "TRX", label: "demo cold wallet" }, DEMO_INITIATOR, null);
  if (added.state !== "applied") throw new Error("the demo address was not added");
  const operationId = await heldWithdrawal(stack.gateway, treasury);
  const held = operationId === null ? null : { operationId, rule: (await holds.view(operationId)).policy.rule, amount: "2500", asset: "USDT", address: DEMO_ADDRESS };
  return { approvers, policyVersion: applied.result.version, held };
}

/**
 * A Binance-signed withdrawal of 2,500 USDT to the demo address, as a bot sends it: the policy
 * holds it, and the answer is Binance's success shape with the operation id as the withdrawal id.
 */
async function heldWithdrawal(gateway: string, key: { readonly id: string; readonly secret: string }): Promise<string | null> {
  const params = new URLSearchParams({ coin: "USDT", network: "TRX", address: DEMO_ADDRESS, amount: "2500", timestamp: String(Date.now()) });
  params.set("signature", createHmac("sha256", key.secret).update(params.toString()).digest("hex"));
  const res = await fetch(`${gateway}/sapi/v1/capital/withdraw/apply?${params.toString()}`, { method: "POST", headers: { "x-mbx-apikey": key.id } });
  const body = (await res.json()) as { id?: unknown };
  return res.status === 200 && typeof body.id === "string" && body.id.startsWith("op_") ? body.id : null;
}
