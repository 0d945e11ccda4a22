/** Escalation and shields. */
export interface ShieldPolicy {
  /** Refused (429) requests from one address within `strikeWindowMs` before it is banned. */
  readonly strikes: number;
  readonly strikeWindowMs: number;
  /** First ban length; each further ban of the address doubles it, up to `banMaxMs`. */
  readonly banBaseMs: number;
  readonly banMaxMs: number;
  /** Authentication failures (bad signature, unknown key…) tolerated per window… */
  readonly authFailuresPerIp: number;
  readonly authFailuresPerKey: number;
  readonly authFailureWindowMs: number;
  /** …before the address (or the key) is blocked for this long. */
  readonly authBlockMs: number;
}

export const DEFAULT_SHIELD_POLICY: ShieldPolicy = {
  strikes: 20,
  strikeWindowMs: 60_000,
  banBaseMs: 30_000,
  banMaxMs: 3_600_000,
  authFailuresPerIp: 30,
  authFailuresPerKey: 30,
  authFailureWindowMs: 60_000,
  authBlockMs: 300_000,
};
