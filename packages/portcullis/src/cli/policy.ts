import { HoldService } from "../holds/service.js";
import { type PriceTable, StaticPrices } from "../operations/prices.js";
import { createClient } from "@portcullis/client/base";
import type { Command } from "commander";
import { existsSync, readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import { checkpointer } from "../audit/index.js";
import { loadConfig } from "../config/config.js";
import { parseJson } from "../contract/json.js";
import type { PolicyAction, PolicyExplanation, HoldRequirements } from "../contract/policy.js";
import { openDataDir } from "../core/data-dir.js";
import { PortcullisError } from "../errors/catalogue.js";
import { AddressBook, type AddressView, DEFAULT_ADDRESS_COOLDOWN_MS } from "../governance/address-book.js";
import { type ChangeOutcome, type Initiator, PolicyService, type PolicyView } from "../governance/policy-service.js";
import { normalizeIp } from "../net/ip.js";
import { parseOperationInput } from "../policy/operation-input.js";
import type { PolicyVersionSummary } from "../storage/types.js";
import { fromApiError } from "./key-ops.js";
import { type AdminTarget as Target, print, targetOptions, withTarget } from "./target.js";

/**
 * The policy and the withdrawal address books (docs/policy.md):
 *
 *   portcullis policy show [--version N]
 *   portcullis policy versions
 *   portcullis policy apply FILE
 *   portcullis policy test --operation JSON [--account A] [--key K] [--source IP] [--at TIME] [--version N]
 *   portcullis addresses add --account A --asset X --address ADDR [--network N] [--tag T] [--label L]
 *   portcullis addresses list [--account A] [--asset X] [--removed]
 *   portcullis addresses remove ID
 *
 * Each with `--data DIR` (the data directory itself, like `keys`) or `--admin URL` (a running admin
 * API, signed with an admin key), and `--json`. On the data directory, changes are judged by the
 * policy like any other (the CLI is `cli:<user>`, without account, key or address); one the policy
 * holds is kept in the data directory (approve it with `portcullis approvals`), and a running
 * gateway on the directory applies it once it is approved. The cooldown of
 * new addresses is the configuration's `policy.addressCooldown`: from `--config FILE`, else from
 * the data directory's own `portcullis.json` (the one `init` writes) when there is one, else 24 h.
 */

/** A change's answer as the CLI prints it: done, or held (the admin API's 202 body). */
type Change<T> = { readonly state: "applied"; readonly result: T } | { readonly state: "held"; readonly operationId: string; readonly hold: string; readonly required: HoldRequirements };

interface GovernanceOps {
  show(version: number | undefined): Promise<PolicyView>;
  versions(): Promise<PolicyVersionSummary[]>;
  apply(document: unknown): Promise<Change<PolicyView>>;
  test(body: Record<string, unknown>): Promise<PolicyExplanation>;
  addAddress(raw: Record<string, unknown>): Promise<Change<AddressView>>;
  listAddresses(query: { account?: string; asset?: string; removed?: boolean }): Promise<AddressView[]>;
  removeAddress(id: string): Promise<AddressView>;
  close(): Promise<void>;
}

function cliActor(): string {
  let name = "unknown";
  try {
    name = userInfo().username;
  } catch {
    // No user database entry (some containers): keep "unknown".
  }
  return `cli:${name}`;
}

function fromOutcome<T>(out: ChangeOutcome<T>): Change<T> {
  return out.state === "applied" ? { state: "applied", result: out.result } : { state: "held", operationId: out.ticket.operationId, hold: out.ticket.state, required: out.ticket.required };
}

/**
 * Where the data directory is, the configured cooldown, and the configured reference prices (the
 * fixed table: a dry run here does not poll a ticker, so a price only the refresher knows is
 * unknown, and fails closed).
 */
function localTarget(opts: Target, defaultData: string): { dataDir: string; cooldownMs: number; prices: PriceTable } {
  if (opts.config !== undefined) {
    const config = loadConfig(opts.config);
    return { dataDir: config.dataDir, cooldownMs: config.policy.addressCooldownMs, prices: config.prices.table };
  }
  const dataDir = resolve(opts.data ?? defaultData);
  const own = join(dataDir, "portcullis.json");
  if (existsSync(own)) {
    const config = loadConfig(own);
    if (resolve(config.dataDir) === dataDir) return { dataDir, cooldownMs: config.policy.addressCooldownMs, prices: config.prices.table };
  }
  return { dataDir, cooldownMs: DEFAULT_ADDRESS_COOLDOWN_MS, prices: {} };
}

async function localOps(opts: Target, defaultData: string): Promise<GovernanceOps> {
  const { dataDir, cooldownMs, prices } = localTarget(opts, defaultData);
  const data = await openDataDir(dataDir);
  const audit = checkpointer(data);
  // A change the policy holds is kept in the data directory's hold service; a running gateway
  // releases it once approved (this process only holds: it starts no release loop).
  const holder = new HoldService({ store: data.store.holds, envelope: data.envelope });
  const policy = await PolicyService.open({ store: data.store, pollIntervalMs: 0, prices: new StaticPrices(prices), holder });
  const book = new AddressBook({ store: data.store, policy, holder, cooldownMs });
  const initiator: Initiator = { actor: cliActor(), account: null, keyId: null, client: null, owner: null };
  return {
    show: (version) => policy.show(version),
    versions: () => policy.versions(),
    apply: async (document) => fromOutcome(await policy.apply(document, initiator)),
    async test(body) {
      const operation = parseOperationInput(body.operation);
      if (!operation.ok) throw new PortcullisError("VALIDATION_FAILED", operation.message, { ...operation.fields });
      const at = typeof body.at === "number" ? body.at : Date.now();
      const text = (v: unknown): string | null => (typeof v === "string" ? v : null);
      return policy.explain({ operation: operation.value, account: text(body.account), keyId: text(body.key), client: text(body.source), at }, typeof body.version === "number" ? body.version : undefined);
    },
    addAddress: async (raw) => fromOutcome(await book.add(raw, initiator, null)),
    listAddresses: (query) => book.list(query, null),
    removeAddress: (id) => book.remove(id, initiator, null),
    close: async () => {
      policy.close();
      await audit.close();
      await data.close();
    },
  };
}

function remoteOps(adminUrl: string, keyId: string, secret: string): GovernanceOps {
  const client = createClient({ baseUrl: adminUrl, keyId, secret });
  const call = <T>(method: string, path: string, json?: unknown): Promise<T> =>
    client.json<T>(method, path, json === undefined ? {} : { json }).catch((err: unknown) => fromApiError(adminUrl, err));
  const change = async <T>(method: string, path: string, json: unknown): Promise<Change<T>> => {
    const body = await call<Record<string, unknown>>(method, path, json);
    if (typeof body.operationId === "string") return { state: "held", operationId: body.operationId, hold: String(body.state), required: body.required as HoldRequirements };
    return { state: "applied", result: body as T };
  };
  return {
    show: (version) => call("GET", `/portcullis/v1/policy${version === undefined ? "" : `?version=${version}`}`),
    versions: async () => (await call<{ versions: PolicyVersionSummary[] }>("GET", "/portcullis/v1/policy/versions")).versions,
    apply: (document) => change("PUT", "/portcullis/v1/policy", document),
    test: (body) => call("POST", "/portcullis/v1/policy/test", body),
    addAddress: (raw) => change("POST", "/portcullis/v1/addresses", raw),
    async listAddresses(query) {
      const params = new URLSearchParams();
      if (query.account !== undefined) params.set("account", query.account);
      if (query.asset !== undefined) params.set("asset", query.asset);
      if (query.removed === true) params.set("removed", "true");
      const qs = params.toString();
      return (await call<{ addresses: AddressView[] }>("GET", `/portcullis/v1/addresses${qs === "" ? "" : `?${qs}`}`)).addresses;
    },
    removeAddress: (id) => call("DELETE", `/portcullis/v1/addresses/${encodeURIComponent(id)}`),
    close: () => Promise.resolve(),
  };
}


function versionOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text)) throw new PortcullisError("VALIDATION_FAILED", `--version takes a version number (got ${text})`);
  return Number(text);
}

function ms(d: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) if (d > 0 && d % size === 0) return `${d / size}${unit}`;
  return `${d}ms`;
}

export function describeAction(action: PolicyAction): string {
  switch (action.type) {
    case "allow":
      return "allow";
    case "block":
      return `block${action.reason === null ? "" : ` (${action.reason})`}`;
    case "hold": {
      const tiers = action.approvals.map((t) => `${t.count} of ${t.group}`).join(" and ");
      const parts = [tiers === "" ? null : `approvals: ${tiers}`, action.delayMs === 0 ? null : `delay ${ms(action.delayMs)}`].filter((p) => p !== null);
      return `hold (${parts.join("; ")})`;
    }
  }
}

function describeHeld(what: string, change: { operationId: string; hold: string; required: HoldRequirements }): string {
  const needs = change.required.approvals.map((t) => `${t.have}/${t.count} of ${t.group}`).join(", ");
  return [
    `${what} is held by the policy: operation ${change.operationId} (${change.hold})`,
    needs === "" ? null : `  approvals   ${needs}`,
    change.required.notBefore === null ? null : `  not before  ${new Date(change.required.notBefore).toISOString()}`,
    `  expires     ${new Date(change.required.expiresAt).toISOString()}`,
  ]
    .filter((l) => l !== null)
    .join("\n");
}

function describeAddress(a: AddressView): string {
  const where = [a.network === null ? null : `network ${a.network}`, a.tag === null ? null : `tag ${a.tag}`].filter((x) => x !== null).join(", ");
  const state = a.state === "cooling" ? `cooling until ${new Date(a.usableFrom).toISOString()}` : a.state;
  return `${a.id}  ${a.account}  ${a.asset.padEnd(6)} ${a.address}${where === "" ? "" : ` (${where})`}  ${state}${a.label === "" ? "" : `  "${a.label}"`}`;
}

function describeExplanation(e: PolicyExplanation): string {
  const lines = [`decision    ${describeAction(e.decision.action)}, by rule "${e.decision.rule}" of version ${e.decision.version}`, ""];
  e.trace.forEach((step, i) => {
    lines.push(`${String(i + 1).padStart(3)}. ${step.rule}: ${step.matched ? "MATCH" : "no match"}`);
    for (const reason of step.because) lines.push(`       - ${reason}`);
  });
  return lines.join("\n");
}

function readDocument(file: string): unknown {
  const text = readFileSync(file, "utf8");
  try {
    return parseJson(text);
  } catch (err) {
    throw new PortcullisError("VALIDATION_FAILED", `${file} is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** ISO-8601 or epoch ms. */
function timeOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (/^\d{1,16}$/.test(text)) return Number(text);
  const t = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(t)) throw new PortcullisError("VALIDATION_FAILED", `--at takes an ISO-8601 time or epoch milliseconds (got ${text})`);
  return t;
}

export function registerPolicyCommands(program: Command, defaultData: string): void {
  const policy = program.command("policy").description("show, apply and dry-run the high-value policy (docs/policy.md)");

  policyTarget(policy.command("show").description("show the version in force (or another version)").option("--version <n>", "a version number")).action(
    async (opts: Target & { version?: string }) => {
      const view = await withOps(opts, defaultData, (ops) => ops.show(versionOption(opts.version)));
      print(opts.json === true, view, () =>
        [
          `version     ${view.version}${view.version === 0 ? " (built in: allow everything)" : ""}`,
          `digest      ${view.digest}`,
          `rules       ${view.rules}`,
          view.createdAt === null ? null : `applied     ${new Date(view.createdAt).toISOString()} by ${view.createdBy}`,
          "",
          JSON.stringify(view.document, null, 2),
        ]
          .filter((l) => l !== null)
          .join("\n"),
      );
    },
  );

  policyTarget(policy.command("versions").description("list every version, newest first")).action(async (opts: Target) => {
    const versions = await withOps(opts, defaultData, (ops) => ops.versions());
    print(opts.json === true, versions, () =>
      versions.map((v) => `${String(v.version).padStart(5)}  ${v.digest.slice(0, 16)}  ${String(v.rules).padStart(4)} rules  ${v.version === 0 ? "built in" : `${new Date(v.createdAt).toISOString()}  ${v.createdBy}`}`).join("\n"),
    );
  });

  policyTarget(policy.command("apply").description("apply a policy document (JSON); the version in force judges the change").argument("<file>", "the policy document")).action(
    async (file: string, opts: Target) => {
      const document = readDocument(file);
      const change = await withOps(opts, defaultData, (ops) => ops.apply(document));
      print(opts.json === true, change.state === "applied" ? { state: "applied", ...change.result } : { state: "held", operationId: change.operationId, hold: change.hold, required: change.required }, () =>
        change.state === "applied" ? `policy version ${change.result.version} is in force (${change.result.rules} rules, digest ${change.result.digest})` : describeHeld("the policy change", change),
      );
    },
  );

  policyTarget(
    policy
      .command("test")
      .description("dry run: how the policy decides an operation, every rule evaluated in order and why")
      .requiredOption("--operation <json>", 'the operation, e.g. \'{"kind":"withdraw","asset":"USDT","amount":"1500","address":"T…"}\'')
      .option("--account <id>", "the initiating key's account")
      .option("--key <id>", "the initiating key")
      .option("--source <ip>", "the client address")
      .option("--at <time>", "when (ISO-8601 or epoch ms; default now): destinations' ages and velocity windows are measured from it")
      .option("--version <n>", "a version other than the one in force"),
  ).action(async (opts: Target & { operation: string; account?: string; key?: string; source?: string; at?: string; version?: string }) => {
    let operation: unknown;
    try {
      operation = parseJson(opts.operation);
    } catch {
      throw new PortcullisError("VALIDATION_FAILED", "--operation must be a JSON object");
    }
    const source = opts.source === undefined ? undefined : normalizeIp(opts.source);
    if (source === null) throw new PortcullisError("VALIDATION_FAILED", `--source takes an IP address (got ${opts.source ?? ""})`);
    const body: Record<string, unknown> = { operation };
    if (opts.account !== undefined) body.account = opts.account;
    if (opts.key !== undefined) body.key = opts.key;
    if (source !== undefined) body.source = source;
    const at = timeOption(opts.at);
    if (at !== undefined) body.at = at;
    const version = versionOption(opts.version);
    if (version !== undefined) body.version = version;
    const explanation = await withOps(opts, defaultData, (ops) => ops.test(body));
    print(opts.json === true, explanation, () => describeExplanation(explanation));
  });

  const addresses = program.command("addresses").description("the withdrawal address books: add (after a cooldown), list, remove");

  policyTarget(
    addresses
      .command("add")
      .description("add an address to an account's book: usable after the cooldown; the policy judges the addition")
      .requiredOption("--account <id>", "the account whose book it is")
      .requiredOption("--asset <asset>", "the asset withdrawn to it (BTC, USDT…)")
      .requiredOption("--address <address>", "the destination address, exactly as withdrawals will send it")
      .option("--network <name>", "the network / chain (withdrawals naming another network do not match it)")
      .option("--tag <memo>", "the memo / destination tag (withdrawals must carry the same one)")
      .option("--label <text>", "a label for humans"),
  ).action(async (opts: Target & { account: string; asset: string; address: string; network?: string; tag?: string; label?: string }) => {
    const raw: Record<string, unknown> = { account: opts.account, asset: opts.asset, address: opts.address };
    if (opts.network !== undefined) raw.network = opts.network;
    if (opts.tag !== undefined) raw.tag = opts.tag;
    if (opts.label !== undefined) raw.label = opts.label;
    const change = await withOps(opts, defaultData, (ops) => ops.addAddress(raw));
    // Applied: the entry (its state "cooling" or "usable"); held: the operation that holds it.
    print(opts.json === true, change.state === "applied" ? change.result : { state: "held", operationId: change.operationId, hold: change.hold, required: change.required }, () =>
      change.state === "applied" ? describeAddress(change.result) : describeHeld(`adding ${opts.address}`, change),
    );
  });

  policyTarget(
    addresses
      .command("list")
      .description("list address book entries")
      .option("--account <id>", "only this account's")
      .option("--asset <asset>", "only this asset's")
      .option("--removed", "include removed entries"),
  ).action(async (opts: Target & { account?: string; asset?: string; removed?: boolean }) => {
    const list = await withOps(opts, defaultData, (ops) =>
      ops.listAddresses({ ...(opts.account === undefined ? {} : { account: opts.account }), ...(opts.asset === undefined ? {} : { asset: opts.asset }), ...(opts.removed === true ? { removed: true } : {}) }),
    );
    print(opts.json === true, list, () => (list.length === 0 ? "no addresses" : list.map(describeAddress).join("\n")));
  });

  policyTarget(addresses.command("remove").description("remove an address at once (never held)").argument("<id>", "the entry's id (adr_…)")).action(async (id: string, opts: Target) => {
    const removed = await withOps(opts, defaultData, (ops) => ops.removeAddress(id));
    print(opts.json === true, removed, () => `removed ${describeAddress(removed)}`);
  });
}

function withOps<T>(opts: Target, defaultData: string, fn: (ops: GovernanceOps) => Promise<T>): Promise<T> {
  return withTarget(opts, "an admin key", remoteOps, () => localOps(opts, defaultData), fn);
}

function policyTarget(cmd: Command): Command {
  return targetOptions(cmd, "an admin key", "the gateway's config file: its data directory and policy settings (with --data: the directory's own portcullis.json, if any)");
}
