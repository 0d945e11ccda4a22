import type { Admission, AdmissionResult, FailureResult, HotStore, StrikeResult } from "../../src/storage/types.js";
import type { ReplayClaim } from "../../src/contract/request.js";

type Claim = "fresh" | "replayed" | "too-low" | "fenced" | "full";

/**
 * A hot store whose replay answers come from `claim` (sync or async, or a rejection standing for
 * an unreachable store), with no limits: for tests of how the pipeline treats replay answers.
 */
export function replayOnlyHot(claim: (replay: ReplayClaim) => Claim | Promise<Claim>): HotStore {
  const answer = (c: Claim): AdmissionResult => (c === "fresh" ? { ok: true, states: [] } : { ok: false, reason: c });
  return {
    kind: "test",
    admit(a: Admission): AdmissionResult | Promise<AdmissionResult> {
      if (a.replay === null) return { ok: true, states: [] };
      const c = claim(a.replay);
      return c instanceof Promise ? c.then(answer) : answer(c);
    },
    epoch: () => Promise.resolve(-Infinity),
    recordFailure(): FailureResult {
      return { ipBlockedUntil: null, keyBlockedUntil: null };
    },
    strike(): StrikeResult {
      return { bannedUntil: null };
    },
    revokeSession(): void {
      // No sessions in these tests.
    },
    close: () => Promise.resolve(),
  };
}
