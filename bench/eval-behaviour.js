/**
 * The anomaly evaluation's ONE adapter to the behaviour stage (stage 11, contract/behaviour.ts):
 * everything the harness (eval-sim.js) needs of the core's behaviour engine goes through here, so
 * wiring the engine into the core changes this file only.
 *
 * What the harness expects of the core, once the engine is merged:
 *
 * - `new Portcullis({ …, behaviour: { enabled: true, …settings } })` turns the engine on
 *   (`coreOptions` below builds that member, with the configured symbol volumes);
 * - `core.behaviour` (null when off) with `settle(): Promise<void>` (every queued observation,
 *   score and response processed), `onAction(listener)` and `onScore(listener)`, each returning an
 *   unsubscribe;
 * - refusals of a key the responder acted on carry `ANOMALY_THROTTLED`, `KEY_SUSPENDED` or
 *   `KEY_REVOKED`; a step-up holds the key's next high-value operation (the hold hook's ticket).
 *
 * Until then `core.behaviour` is undefined: `attachBehaviour` answers an engine that is absent
 * (`available` false, `settle` resolves at once, no action is ever reported), and the harness runs
 * end to end and reports every scenario "not detected".
 */

/** The refusal codes that are the behaviour stage's own responses (a key the responder acted on). */
export const BEHAVIOUR_CODES = new Set(["ANOMALY_THROTTLED", "KEY_SUSPENDED", "KEY_REVOKED"]);

/** The actions that count as acting on a key (a `record` is a note in the log, not a response). */
export const ACTING = new Set(["alert", "step-up", "throttle", "suspend", "revoke"]);

/**
 * The `behaviour` member of the core's options: the engine on, with the venue's liquidity (24 h
 * quote volume per symbol, what "an illiquid pair" is measured against).
 *
 * The lead maps `volumes` to the engine's setting for configured symbol volumes (its name in the
 * behaviour settings is the engine's to choose); extra settings pass through unchanged.
 */
export function coreOptions({ volumes, settings = {} }) {
  return { behaviour: { enabled: true, volumes, ...settings } };
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
