import { createClient } from "@portcullis/client/base";
import type { Command } from "commander";
import { resolve } from "node:path";
import { DEFAULT_BEHAVIOUR_SETTINGS } from "../anomaly/responses.js";
import { AnomalyResponder } from "../anomaly/responder.js";
import { type WebhookKeyView, webhookKeyView } from "../anomaly/webhook.js";
import { checkpointer } from "../audit/index.js";
import { ANOMALY_ACTIONS, type AnomalyAction, type AnomalyActionRecord, type AnomalyActionState } from "../contract/behaviour.js";
import { openDataDir } from "../core/data-dir.js";
import { PortcullisError } from "../errors/catalogue.js";
import { KeyService } from "../keys/service.js";
import type { AnomalyActionFilter } from "../storage/types.js";
import { cliActor, fromApiError } from "./key-ops.js";
import { type AdminTarget as Target, print, targetOptions, withTarget } from "./target.js";

/**
 * `portcullis anomalies list|show|undo|webhook-key` (docs/behaviour.md, "Responses"): the behaviour
 * stage's anomaly actions, on a data directory (`--data`) or through a running admin API
 * (`--admin`, with a key holding `admin:anomalies`).
 */

interface AnomalyOps {
  list(filter: AnomalyActionFilter): Promise<AnomalyActionRecord[]>;
  show(id: string): Promise<AnomalyActionRecord>;
  undo(id: string): Promise<AnomalyActionRecord>;
  webhookKey(): Promise<WebhookKeyView>;
  close(): Promise<void>;
}

async function localOps(dataDir: string): Promise<AnomalyOps> {
  const data = await openDataDir(dataDir);
  const audit = checkpointer(data);
  const keys = new KeyService({ store: data.store, envelope: data.envelope, environment: data.environment });
  const responder = new AnomalyResponder({ settings: DEFAULT_BEHAVIOUR_SETTINGS, keys, store: data.store.anomalies, audit });
  const actor = cliActor();
  return {
    list: (filter) => responder.list(filter),
    show: (id) => responder.get(id),
    undo: (id) => responder.undo(id, actor),
    webhookKey: async () => webhookKeyView(await data.signingKeys.open("webhook")),
    close: async () => {
      await audit.close();
      await data.close();
    },
  };
}

function remoteOps(adminUrl: string, keyId: string, secret: string): AnomalyOps {
  const client = createClient({ baseUrl: adminUrl, keyId, secret });
  const call = <T>(method: string, path: string): Promise<T> => client.json<T>(method, path, {}).catch((err: unknown) => fromApiError(adminUrl, err));
  const id = (s: string): string => encodeURIComponent(s);
  return {
    list: async (filter) => {
      const q = new URLSearchParams();
      if (filter.keyId !== undefined) q.set("key", filter.keyId);
      if (filter.account !== undefined) q.set("account", filter.account);
      if (filter.state !== undefined) q.set("state", filter.state);
      if (filter.action !== undefined) q.set("action", filter.action);
      if (filter.limit !== undefined) q.set("limit", String(filter.limit));
      const query = q.toString();
      return (await call<{ actions: AnomalyActionRecord[] }>("GET", `/portcullis/v1/anomalies${query === "" ? "" : `?${query}`}`)).actions;
    },
    show: (action) => call("GET", `/portcullis/v1/anomalies/${id(action)}`),
    undo: (action) => call("POST", `/portcullis/v1/anomalies/${id(action)}/undo`),
    webhookKey: () => call("GET", "/portcullis/v1/anomalies/webhook-key"),
    close: () => Promise.resolve(),
  };
}

const STATES: readonly AnomalyActionState[] = ["active", "undone", "done"];

function line(r: AnomalyActionRecord): string {
  const top = r.explanation.contributions[0];
  return `${r.id}  ${new Date(r.at).toISOString()}  ${r.action.padEnd(8)}  ${r.state.padEnd(6)}  score ${String(Math.round(r.score)).padStart(3)}  ${r.keyId}  ${r.account}${top === undefined ? "" : `  ${top.feature}: ${top.observed}`}`;
}

function detail(r: AnomalyActionRecord): string {
  const lines = [
    `${r.id}: ${r.action} on key ${r.keyId} (account ${r.account})`,
    `state     ${r.state}${r.undoneAt === null ? "" : ` by ${r.undoneBy ?? "?"} at ${new Date(r.undoneAt).toISOString()}`}`,
    `at        ${new Date(r.at).toISOString()}`,
    ...(r.dueAt === null ? [] : [`revoke at ${new Date(r.dueAt).toISOString()} unless undone`]),
    `score     ${r.score} (compared with: ${r.explanation.basis}, ${r.explanation.seen} events seen before)`,
    ...r.explanation.contributions.map((c) => `  +${c.points}  ${c.feature}: ${c.observed} (normal: ${c.baseline}; deviation ${c.deviation})`),
  ];
  return lines.join("\n");
}

export function registerAnomalyCommands(program: Command, defaultData: string): void {
  const anomalies = program.command("anomalies").description("list, show and undo the behaviour stage's anomaly actions (throttles, suspensions, revokes…)");
  target(
    anomalies
      .command("list")
      .description("list anomaly actions, newest first")
      .option("--key <id>", "only this key's")
      .option("--account <account>", "only this account's")
      .option("--state <state>", `only those in this state (${STATES.join(", ")})`)
      .option("--action <action>", `only this action (${ANOMALY_ACTIONS.join(", ")})`)
      .option("--limit <n>", "at most this many (1-1000, default 100)"),
  ).action(async (opts: Target & { key?: string; account?: string; state?: string; action?: string; limit?: string }) => {
    if (opts.state !== undefined && !(STATES as readonly string[]).includes(opts.state)) {
      throw new PortcullisError("VALIDATION_FAILED", `--state must be one of ${STATES.join(", ")}`, { state: "invalid" });
    }
    if (opts.action !== undefined && !(ANOMALY_ACTIONS as readonly string[]).includes(opts.action)) {
      throw new PortcullisError("VALIDATION_FAILED", `--action must be one of ${ANOMALY_ACTIONS.join(", ")}`, { action: "invalid" });
    }
    const limit = opts.limit === undefined ? 100 : Number(opts.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new PortcullisError("VALIDATION_FAILED", "--limit must be an integer from 1 to 1000", { limit: "invalid" });
    const filter: AnomalyActionFilter = {
      limit,
      ...(opts.key === undefined ? {} : { keyId: opts.key }),
      ...(opts.account === undefined ? {} : { account: opts.account }),
      ...(opts.state === undefined ? {} : { state: opts.state as AnomalyActionState }),
      ...(opts.action === undefined ? {} : { action: opts.action as AnomalyAction }),
    };
    const rows = await withOps(opts, defaultData, (ops) => ops.list(filter));
    print(opts.json, { actions: rows }, () => (rows.length === 0 ? "no anomaly actions" : rows.map(line).join("\n")));
  });
  target(anomalies.command("show").description("show an anomaly action and the score that led to it").argument("<id>", "action id (an_…)")).action(
    async (id: string, opts: Target) => {
      const record = await withOps(opts, defaultData, (ops) => ops.show(id));
      print(opts.json, record, () => detail(record));
    },
  );
  target(
    anomalies.command("undo").description("undo an anomaly action: clear a step-up or throttle, resume a suspended key, cancel a revoke still in its grace").argument("<id>", "action id (an_…)"),
  ).action(async (id: string, opts: Target) => {
    const record = await withOps(opts, defaultData, (ops) => ops.undo(id));
    print(opts.json, record, () => `${record.id} (${record.action} on ${record.keyId}) undone`);
  });
  target(anomalies.command("webhook-key").description("print the public key that signs the alert webhook (give it to the receiver)")).action(async (opts: Target) => {
    const key = await withOps(opts, defaultData, (ops) => ops.webhookKey());
    print(opts.json, key, () => `# ${key.kid}\n${key.publicKey.trimEnd()}`);
  });
}

function withOps<T>(opts: Target, defaultData: string, fn: (ops: AnomalyOps) => Promise<T>): Promise<T> {
  return withTarget(opts, "an admin key", remoteOps, () => localOps(resolve(opts.data ?? defaultData)), fn);
}

function target(cmd: Command): Command {
  return targetOptions(cmd, "a key with admin:anomalies");
}
