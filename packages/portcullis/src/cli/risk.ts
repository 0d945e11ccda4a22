import { createClient } from "@portcullis/client/base";
import type { Command } from "commander";
import { join, resolve } from "node:path";
import { RouteTable } from "../authz/routes.js";
import { loadConfig } from "../config/config.js";
import { openDataDir } from "../core/data-dir.js";
import { PortcullisError } from "../errors/catalogue.js";
import type { Exposure, Move, RiskProfile } from "../exposure/profile.js";
import { MAX_TOP, RiskProfiles } from "../exposure/service.js";
import { PolicyService } from "../governance/policy-service.js";
import { KeyService } from "../keys/service.js";
import { StaticPrices } from "../operations/prices.js";
import { fromApiError } from "./key-ops.js";
import { type AdminTarget, print, targetOptions, withTarget } from "./target.js";

/**
 * Keys' risk profiles (docs/behaviour.md, "Risk profile"):
 *
 *   portcullis keys risk ID [--json]           one key: what it could do in the next hour if stolen, and what each control would change
 *   portcullis keys risk --top N [--json]      the N riskiest keys, riskiest first
 *
 * With `--data DIR` (the data directory itself: the limits, routes and reference prices of the
 * configuration its gateway uses, `--config FILE` or else the directory's own portcullis.json, and
 * the policy version in force) or `--admin URL` (a running admin API, signed with an admin key).
 * On the data directory the behaviour model's scores are not read: `anomalyScore` is null.
 */

interface RiskOptions extends AdminTarget {
  top?: string;
  account?: string;
}

interface RiskOps {
  profile(id: string): Promise<RiskProfile>;
  top(n: number, account: string | undefined): Promise<RiskProfile[]>;
  close(): Promise<void>;
}

async function localOps(opts: RiskOptions, defaultData: string): Promise<RiskOps> {
  const dataDir = resolve(opts.data ?? defaultData);
  // The configuration the directory's gateway runs with: its limits, routes and prices.
  const config = loadConfig(opts.config ?? join(dataDir, "portcullis.json"));
  const data = await openDataDir(dataDir);
  const prices = new StaticPrices(config.prices.table);
  const policy = await PolicyService.open({ store: data.store, pollIntervalMs: 0, prices });
  const keys = new KeyService({ store: data.store, envelope: data.envelope, environment: data.environment, idleExpiryMs: config.keys.idleExpiryMs });
  const risk = new RiskProfiles({
    keys,
    limits: config.limits.specs,
    routes: new RouteTable(config.routes).routes,
    policy,
    prices,
    assets: Object.keys(config.prices.table.assets ?? {}),
    symbols: Object.keys(config.prices.table.symbols ?? {}),
    anomaly: null,
    idleExpiryMs: config.keys.idleExpiryMs,
  });
  return {
    profile: (id) => risk.profile(id),
    top: (n, account) => risk.top(n, account === undefined ? {} : { account }),
    close: async () => {
      policy.close();
      await data.close();
    },
  };
}

function remoteOps(adminUrl: string, keyId: string, secret: string): RiskOps {
  const client = createClient({ baseUrl: adminUrl, keyId, secret });
  const call = <T>(path: string): Promise<T> => client.json<T>("GET", path).catch((err: unknown) => fromApiError(adminUrl, err));
  return {
    profile: (id) => call(`/portcullis/v1/keys/${encodeURIComponent(id)}/risk`),
    async top(n, account) {
      const params = new URLSearchParams({ top: String(n) });
      if (account !== undefined) params.set("account", account);
      return (await call<{ keys: RiskProfile[] }>(`/portcullis/v1/risk?${params.toString()}`)).keys;
    },
    close: () => Promise.resolve(),
  };
}

function amount(x: number | null): string {
  return x === null ? "unbounded" : x.toLocaleString("en-US", { maximumFractionDigits: 2 });
}

function moveText(m: Move): string {
  const show = (v: number | string | null): string => (typeof v === "string" ? v : amount(v));
  return `${m.field} ${show(m.from)} → ${show(m.to)}`;
}

function reachText(e: Exposure): string {
  const r = e.reachableFrom;
  if (r.from === "anywhere") return "anywhere (no IP allowlist)";
  return `${r.networks} network${r.networks === 1 ? "" : "s"} (${r.cidrs.join(", ")}; ${amount(r.addresses)} address${r.addresses === 1 ? "" : "es"})`;
}

function duration(ms: number): string {
  const days = ms / 86_400_000;
  return Number.isInteger(days) ? `${days}d` : `${Math.round(ms / 3_600_000)}h`;
}

/** The human form of one profile: the numbers, then the sensitivities. */
export function describeRisk(p: RiskProfile): string {
  const e = p.exposure;
  const parts = Object.entries(p.scoreParts)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  const rot = e.rotation;
  const rotation = [
    rot.rotatedTo === null ? null : `rotated to ${rot.rotatedTo}`,
    rot.rotatedFrom === null ? null : `successor of ${rot.rotatedFrom}`,
    rot.maxAgeMs === null ? null : `max age ${duration(rot.maxAgeMs)}`,
    rot.expiresAt === null ? null : `expires ${new Date(rot.expiresAt).toISOString()}`,
    rot.idleExpiresAt === null ? null : `idle expiry ${new Date(rot.idleExpiresAt).toISOString()}`,
  ].filter((x) => x !== null);
  const lines = [
    `key           ${p.keyId} (${p.account}${p.label === "" ? "" : `, ${p.label}`}) ${p.status}${p.usable ? "" : ": not usable, score 0"}`,
    `risk score    ${p.riskScore} / 100 (${parts})`,
    `orders        ${amount(e.maxOrdersPerHour)}/h; one order up to ${amount(e.maxOrderNotional)}; ${amount(e.maxOrderNotionalPerHour)}/h in value; open at once ${amount(e.maxOpenNotional)}`,
    `withdrawals   ${amount(e.maxWithdrawalPerHour)}/h to a new address, ${amount(e.maxWithdrawalPerHourKnown)}/h to a known one (${amount(e.maxWithdrawalsPerHour)} requests/h; policy version ${p.policyVersion})`,
    ...e.withdrawals
      .filter((w) => w.toNewAddress.value !== 0 || w.toKnownAddress.value !== 0)
      .map((w) => `  ${(w.asset === "*" ? "(unpriced)" : w.asset).padEnd(11)} one up to ${w.single ?? "unbounded"}, ${w.toNewAddress.amount ?? "unbounded"}/h to a new address${w.valueAssumed ? " (value assumed 1:1)" : ""}`),
    `reachable     ${reachText(e)}`,
    `scopes        ${e.scopes.count} (${e.scopes.list.join(", ")}), breadth ${e.scopes.breadth}`,
    `age           ${e.ageDays} days; ${rotation.length === 0 ? "no expiry, no rotation" : rotation.join(", ")}`,
    `anomaly       ${e.anomalyScore === null ? "no score" : e.anomalyScore}${e.riskState === null ? "" : `; risk state ${e.riskState}`}`,
    "",
    p.sensitivities.length === 0 ? "sensitivities none" : "sensitivities (largest reduction first)",
    ...p.sensitivities.map((s) => `  ${(s.riskScoreDelta > 0 ? `+${s.riskScoreDelta}` : String(s.riskScoreDelta)).padStart(6)}  ${s.description}${s.moves.length === 0 ? "" : `: ${s.moves.map(moveText).join(", ")}`}`),
  ];
  return lines.join("\n");
}

/** The human form of a ranking: one line per key. */
export function describeTop(list: readonly RiskProfile[]): string {
  if (list.length === 0) return "no keys";
  const head = `${"score".padStart(5)}  ${"key".padEnd(40)} ${"account".padEnd(12)} ${"withdraw/h".padStart(12)} ${"orders/h".padStart(10)}  reach`;
  return [
    head,
    ...list.map(
      (p) =>
        `${String(p.riskScore).padStart(5)}  ${p.keyId.padEnd(40)} ${p.account.padEnd(12)} ${amount(p.exposure.maxWithdrawalPerHour).padStart(12)} ${amount(p.exposure.maxOrdersPerHour).padStart(10)}  ${p.exposure.reachableFrom.from === "anywhere" ? "anywhere" : `${p.exposure.reachableFrom.networks} net`}`,
    ),
  ].join("\n");
}

function topOption(text: string): number {
  const n = Number(text);
  if (!/^\d{1,4}$/.test(text) || n < 1 || n > MAX_TOP) throw new PortcullisError("VALIDATION_FAILED", `--top takes an integer from 1 to ${MAX_TOP} (got ${text})`);
  return n;
}

/** Registers `keys risk` on the `keys` command group. */
export function registerRiskCommand(keys: Command, defaultData: string): void {
  targetOptions(
    keys
      .command("risk")
      .description("a key's risk profile: what it could do in the next hour if stolen, and what each control would change (docs/behaviour.md)")
      .argument("[id]", "key id (or --top N)")
      .option("--top <n>", "the N riskiest keys, riskiest first")
      .option("--account <id>", "with --top: only this account's keys"),
    "a key with admin:keys",
    "the gateway's config file (its limits, routes and prices; default DIR/portcullis.json)",
  ).action(async (id: string | undefined, opts: RiskOptions) => {
    if ((id === undefined) === (opts.top === undefined)) throw new PortcullisError("VALIDATION_FAILED", "give a key id, or --top N (not both)");
    if (opts.account !== undefined && opts.top === undefined) throw new PortcullisError("VALIDATION_FAILED", "--account goes with --top N");
    const top = opts.top === undefined ? null : topOption(opts.top);
    await withTarget(opts, "an admin key", remoteOps, () => localOps(opts, defaultData), async (ops) => {
      if (top === null) {
        const profile = await ops.profile(id ?? "");
        print(opts.json, profile, () => describeRisk(profile));
      } else {
        const list = await ops.top(top, opts.account);
        print(opts.json, list, () => describeTop(list));
      }
    });
  });
}
