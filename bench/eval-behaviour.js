/**
 * The anomaly evaluation's one adapter to the behaviour stage (stage 11, docs/behaviour.md):
 * everything the harness (eval-sim.js) needs of the core's behaviour engine goes through here.
 *
 * - `coreOptions` turns the engine on in `new Portcullis({ …, behaviour })`, with the default
 *   response policy and the venue's configured liquidity;
 * - `holdOptions` gives the hold service the step-up (a stepped-up key's high-value operations are
 *   held for the `security` group, which nobody in the simulation approves);
 * - `core.behaviour` (the engine) has `settle()`, `onAction(listener)` and `onScore(listener)`;
 * - refusals of a key the responder acted on carry `ANOMALY_THROTTLED`, `KEY_SUSPENDED` or
 *   `KEY_REVOKED`.
 */
import { DEFAULT_BEHAVIOUR_SETTINGS, stepUpSettings } from "../packages/portcullis/dist/anomaly/responses.js";

/** The refusal codes that are the behaviour stage's own responses (a key the responder acted on). */
export const BEHAVIOUR_CODES = new Set(["ANOMALY_THROTTLED", "KEY_SUSPENDED", "KEY_REVOKED"]);

/** The actions that count as acting on a key (a `record` is a note in the log, not a response). */
export const ACTING = new Set(["alert", "step-up", "throttle", "suspend", "revoke"]);

/**
 * The `behaviour` member of the core's options: the engine on with the default response policy,
 * and the venue's liquidity (24 h quote volume per symbol, what "an illiquid pair" is measured
 * against) as the configuration's `behaviour.liquidity` holds it.
 */
export function coreOptions({ volumes, settings = {} }) {
  const liquidity = Object.fromEntries(Object.entries(volumes).map(([symbol, volume]) => [symbol, String(volume)]));
  return { behaviour: { settings: { ...DEFAULT_BEHAVIOUR_SETTINGS, liquidity, ...settings } } };
}

/** The hold service's part of stage 11: what a stepped-up key's operations need, and prices to value orders. */
export function holdOptions(prices, settings = {}) {
  return { stepUp: stepUpSettings({ ...DEFAULT_BEHAVIOUR_SETTINGS, ...settings }.stepUp), prices };
}

/**
 * The engine of a built core, as the harness uses it: `available` (false: the core has none, so
 * nothing is ever detected), `settle()`, and `onAction` / `onScore` listeners (each returns an
 * unsubscribe). Listener records are passed through as the contract declares them
 * (AnomalyActionRecord, BehaviourScore).
 */
export function attachBehaviour(core) {
  const engine = core.behaviour ?? null;
  if (engine === null || typeof engine.settle !== "function") {
    return {
      available: false,
      settle: () => Promise.resolve(),
      onAction: () => () => {},
      onScore: () => () => {},
    };
  }
  return {
    available: true,
    settle: () => engine.settle(),
    onAction: (listener) => engine.onAction(listener),
    onScore: (listener) => engine.onScore(listener),
  };
}
