import { createClient } from "@portcullis/client/base";
import type { Command } from "commander";
import { createPrivateKey, createPublicKey, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { checkpointer } from "../audit/index.js";
import { PortcullisError } from "../errors/catalogue.js";
import { HOLD_STATES, type HoldState } from "../contract/policy.js";
import { openDataDir } from "../core/data-dir.js";
import { showOperation } from "../admin/approvals.js";
import { type ApprovalDecision, approvalMessage, parseApproverKey } from "../holds/digest.js";
import { type DigestDocumentView, digestOfDocument, renderOperation } from "../holds/render.js";
import { HoldService, type OperationView } from "../holds/service.js";
import type { ApproverRow } from "../storage/types.js";
import { cliActor, fromApiError } from "./key-ops.js";
import { type AdminTarget as Target, print, targetOptions, withTarget } from "./target.js";

/**
 * `portcullis approvers add|list|remove` and `portcullis approvals list|show|approve|reject`
 * (docs/approvals.md), on a data directory (`--data`) or through a running admin API (`--admin`,
 * with an operator key). `approve` and `reject` sign here, with the approver's own Ed25519 private
 * key (`--key FILE`, never sent anywhere), the digest this command recomputes from the operation's
 * facts — never a digest it was given — after showing them.
 */

type Shown = OperationView & { document: DigestDocumentView; rendering: string };

interface ApprovalOps {
  addApprover(name: string, groups: readonly string[], publicKey: string): Promise<ApproverRow>;
  approvers(): Promise<ApproverRow[]>;
  removeApprover(name: string): Promise<void>;
  list(state: HoldState | undefined): Promise<OperationView[]>;
  show(id: string): Promise<Shown>;
  decide(id: string, approver: string, decision: ApprovalDecision, digest: string, signature: string, reason: string | null): Promise<OperationView>;
  close(): Promise<void>;
}

async function localOps(dataDir: string): Promise<ApprovalOps> {
  const data = await openDataDir(dataDir);
  const audit = checkpointer(data);
  // No policy and no releaser here: a gateway on the same data directory releases what becomes ready.
  const holds = new HoldService({ store: data.store.holds, envelope: data.envelope });
  const actor = cliActor();
  return {
    addApprover: (name, groups, publicKey) => holds.addApprover(name, groups, publicKey, actor),
    approvers: () => holds.approvers(),
    removeApprover: (name) => holds.removeApprover(name, actor),
    list: (state) => holds.list(state === undefined ? {} : { state }),
    show: (id) => showOperation(holds, id),
    decide: (id, approver, decision, digest, signature, reason) => holds.decide(id, approver, decision, digest, signature, reason),
    close: async () => {
      await holds.stop();
      await audit.close();
      await data.close();
    },
  };
}

function remoteOps(adminUrl: string, keyId: string, secret: string): ApprovalOps {
  const client = createClient({ baseUrl: adminUrl, keyId, secret });
  const call = <T>(method: string, path: string, json?: unknown): Promise<T> =>
    client.json<T>(method, path, json === undefined ? {} : { json }).catch((err: unknown) => fromApiError(adminUrl, err));
  const id = (s: string): string => encodeURIComponent(s);
  return {
    addApprover: (name, groups, publicKey) => call("POST", "/portcullis/v1/approvers", { name, groups, publicKey }),
    approvers: async () => (await call<{ approvers: ApproverRow[] }>("GET", "/portcullis/v1/approvers")).approvers,
    removeApprover: async (name) => {
      await call("DELETE", `/portcullis/v1/approvers/${id(name)}`);
    },
    list: async (state) => (await call<{ operations: OperationView[] }>("GET", `/portcullis/v1/approvals${state === undefined ? "" : `?state=${state}`}`)).operations,
    show: (op) => call("GET", `/portcullis/v1/approvals/${id(op)}`),
    decide: (op, approver, decision, digest, signature, reason) =>
      call("POST", `/portcullis/v1/approvals/${id(op)}/${decision}`, reason === null ? { approver, digest, signature } : { approver, digest, signature, reason }),
    close: () => Promise.resolve(),
  };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function describeApprover(a: ApproverRow): string {
  return `${a.name}  groups ${a.groups.join(", ")}  added ${new Date(a.addedAt).toISOString()}`;
}

function line(v: OperationView): string {
  const needs = v.required.approvals.map((t) => `${t.have}/${t.count} ${t.group}`).join(", ");
  return `${v.operationId}  ${v.state.padEnd(9)}  ${v.kind.padEnd(8)}  ${v.account ?? "-"}  ${needs === "" ? "delay only" : needs}`;
}

/**
 * The operation as shown, with its digest recomputed here from the facts the digest covers; a
 * store or admin API that sent a digest that does not match them is refused, never signed.
 */
function verified(shown: Shown): string {
  const digest = digestOfDocument(shown.document);
  if (digest !== shown.digest || shown.document.operationId !== shown.operationId) {
    throw new PortcullisError("APPROVAL_DIGEST_MISMATCH", "the digest sent does not match the operation's facts; nothing was signed");
  }
  return digest;
}

/** The approver's private key (Ed25519, PKCS#8 PEM) and the public key it matches. */
function approverKey(file: string): { privateKey: ReturnType<typeof createPrivateKey>; publicPem: string } {
  const privateKey = createPrivateKey({ key: readFileSync(file, "utf8"), format: "pem" });
  if (privateKey.asymmetricKeyType !== "ed25519") throw new PortcullisError("VALIDATION_FAILED", "--key must be an Ed25519 private key (PKCS#8 PEM)", { key: "not ed25519" });
  const publicPem = parseApproverKey(createPublicKey(privateKey).export({ type: "spki", format: "pem" }).toString());
  if (publicPem === null) throw new PortcullisError("VALIDATION_FAILED", "--key must be an Ed25519 private key", { key: "invalid" });
  return { privateKey, publicPem };
}

async function decide(opts: Target & { key: string; approver?: string; reason?: string }, defaultData: string, id: string, decision: ApprovalDecision): Promise<void> {
  const { privateKey, publicPem } = approverKey(opts.key);
  const result = await withOps(opts, defaultData, async (ops) => {
    let name = opts.approver;
    if (name === undefined) {
      // The approver is whoever is registered with this key's public half.
      name = (await ops.approvers()).find((a) => a.publicKey === publicPem)?.name;
      if (name === undefined) throw new PortcullisError("APPROVER_NOT_FOUND", "no approver is registered with this key's public key");
    }
    const shown = await ops.show(id);
    const digest = verified(shown);
    if (opts.json !== true) process.stderr.write(`${renderOperation(shown.document, shown)}\n\n${decision === "approve" ? "approving" : "rejecting"} as ${name}\n`);
    const signature = sign(null, approvalMessage(decision, digest), privateKey).toString("base64");
    return ops.decide(id, name, decision, digest, signature, opts.reason ?? null);
  });
  print(opts.json, result, () => `${result.operationId} is ${result.state}`);
}

export function registerApprovalCommands(program: Command, defaultData: string): void {
  const approvers = program.command("approvers").description("register and remove the people who approve held operations");
  target(
    approvers
      .command("add")
      .description("register an approver (or add one to another group): a person with their own Ed25519 key")
      .requiredOption("--name <name>", "the person's name (as on their keys' --owner)")
      .requiredOption("--group <group>", "a group they approve for (repeatable)", collect)
      .requiredOption("--public-key <file>", "their Ed25519 public key: SPKI PEM or JWK"),
  ).action(async (opts: Target & { name: string; group: string[]; publicKey: string }) => {
    const publicKey = readFileSync(opts.publicKey, "utf8");
    const row = await withOps(opts, defaultData, (ops) => ops.addApprover(opts.name, opts.group, publicKey));
    print(opts.json, row, () => describeApprover(row));
  });
  target(approvers.command("list").description("list approvers")).action(async (opts: Target) => {
    const rows = await withOps(opts, defaultData, (ops) => ops.approvers());
    print(opts.json, { approvers: rows }, () => (rows.length === 0 ? "no approvers" : rows.map(describeApprover).join("\n")));
  });
  target(approvers.command("remove").description("remove an approver (their past decisions stay)").argument("<name>", "the approver's name")).action(
    async (name: string, opts: Target) => {
      await withOps(opts, defaultData, (ops) => ops.removeApprover(name));
      print(opts.json, { removed: name }, () => `${name} removed`);
    },
  );

  const approvals = program.command("approvals").description("list, show, approve and reject held operations");
  target(approvals.command("list").description("list held operations").option("--state <state>", `only those in this state (${HOLD_STATES.join(", ")})`)).action(
    async (opts: Target & { state?: string }) => {
      if (opts.state !== undefined && !(HOLD_STATES as readonly string[]).includes(opts.state)) {
        throw new PortcullisError("VALIDATION_FAILED", `--state must be one of ${HOLD_STATES.join(", ")}`, { state: "invalid" });
      }
      const rows = await withOps(opts, defaultData, (ops) => ops.list(opts.state as HoldState | undefined));
      print(opts.json, { operations: rows }, () => (rows.length === 0 ? "no held operations" : rows.map(line).join("\n")));
    },
  );
  target(approvals.command("show").description("show a held operation as an approver signs it: its facts and their digest").argument("<id>", "operation id")).action(
    async (id: string, opts: Target) => {
      const shown = await withOps(opts, defaultData, (ops) => ops.show(id));
      const digest = verified(shown);
      print(opts.json, { ...shown, digest }, () => renderOperation(shown.document, shown));
    },
  );
  for (const decision of ["approve", "reject"] as const) {
    const cmd = approvals
      .command(decision)
      .description(`${decision} a held operation, signing its digest with your own Ed25519 key`)
      .argument("<id>", "operation id")
      .requiredOption("--key <file>", "your Ed25519 private key (PKCS#8 PEM); it never leaves this machine")
      .option("--approver <name>", "your approver name (default: the approver registered with this key)");
    if (decision === "reject") cmd.option("--reason <text>", "why (recorded with the rejection; not signed)");
    target(cmd).action(async (id: string, opts: Target & { key: string; approver?: string; reason?: string }) => {
      await decide(opts, defaultData, id, decision);
    });
  }
}

function withOps<T>(opts: Target, defaultData: string, fn: (ops: ApprovalOps) => Promise<T>): Promise<T> {
  return withTarget(opts, "an operator key", remoteOps, () => localOps(resolve(opts.data ?? defaultData)), fn);
}

function target(cmd: Command): Command {
  return targetOptions(cmd, "an operator key");
}
