import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AnomalyResponder } from "../../src/anomaly/responder.js";
import { type BehaviourSettings, DEFAULT_BEHAVIOUR_SETTINGS } from "../../src/anomaly/responses.js";
import type { AlertSink, WebhookEvent } from "../../src/anomaly/webhook.js";
import { AuditLog } from "../../src/audit/log.js";
import type { AnomalyActionRecord, BehaviourScore, FeatureContribution } from "../../src/contract/behaviour.js";
import { type OpenDataDir, initDataDir, openDataDir } from "../../src/core/data-dir.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { KeyService } from "../../src/keys/service.js";
import { FakeClock } from "../support/harness.js";

/** Every alert the responder sent, in order. */
export class Alerts implements AlertSink {
  readonly sent: { record: AnomalyActionRecord; event: WebhookEvent }[] = [];
  send(record: AnomalyActionRecord, event: WebhookEvent): void {
    this.sent.push({ record, event });
  }
}

export interface AnomalyFixture {
  readonly dir: string;
  readonly data: OpenDataDir;
  readonly clock: FakeClock;
  readonly keys: KeyService;
  readonly audit: AuditLog;
  readonly alerts: Alerts;
  readonly responder: AnomalyResponder;
  /** An active key of `account`. */
  key(account?: string): Promise<string>;
  cleanup(): Promise<void>;
}

export const CONTRIBUTIONS: readonly FeatureContribution[] = [
  { feature: "network.new", observed: "203.0.113.0/24", baseline: "2 networks seen", deviation: 6, points: 40 },
  { feature: "rate.1m", observed: "62 requests/min", baseline: "median 3.1/min, MAD 1.2", deviation: 9.3, points: 30 },
  { feature: "symbol.new", observed: "XYZUSDT", baseline: "4 symbols traded", deviation: 4, points: 15 },
  { feature: "hour", observed: "03:00 UTC", baseline: "09:00-17:00 UTC", deviation: 3, points: 6 },
];

export function score(keyId: string, value: number, at: number, account = "acct-1"): BehaviourScore {
  return { keyId, account, at, score: value, basis: "key", seen: 420, contributions: CONTRIBUTIONS };
}

export async function anomalyFixture(settings: Partial<BehaviourSettings> = {}): Promise<AnomalyFixture> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-anomaly-"));
  await initDataDir(dir, "test");
  const data = await openDataDir(dir, { pollIntervalMs: 50 });
  const clock = new FakeClock();
  const keys = new KeyService({ store: data.store, envelope: data.envelope, environment: "test", now: clock.now });
  const audit = new AuditLog({ store: data.store.audit, signer: data.signingKeys, requests: "none", checkpointIntervalMs: 0, now: clock.now });
  const alerts = new Alerts();
  const responder = new AnomalyResponder({ settings: { ...DEFAULT_BEHAVIOUR_SETTINGS, ...settings }, keys, store: data.store.anomalies, audit, alerts, now: clock.now });
  return {
    dir,
    data,
    clock,
    keys,
    audit,
    alerts,
    responder,
    async key(account = "acct-1") {
      return (await keys.create(valueOrThrow(parseCreateKeyInput({ account, scopes: ["read", "trade"] }, clock.ms)), "test")).key.id;
    },
    async cleanup() {
      await audit.close();
      await data.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
