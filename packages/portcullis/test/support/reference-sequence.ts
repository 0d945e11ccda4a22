/** The answers of an increasing-nonce check that accepts or refuses a value. */
export type SequenceAnswer = "fresh" | "replayed" | "too-low";

/**
 * The increasing-nonce rule as documented (SequenceStore), on a plain list of the values accepted
 * so far (appended to when `v` is fresh): the reference the stores are checked against.
 */
export function referenceSequence(accepted: bigint[], v: bigint, window: bigint): SequenceAnswer {
  const highest = accepted.length === 0 ? null : accepted.reduce((a, b) => (a > b ? a : b));
  let expected: SequenceAnswer;
  if (highest === null || v > highest) expected = "fresh";
  // Below the window nothing is remembered: too low, whether or not it was seen.
  else if (highest - v > window) expected = "too-low";
  else if (accepted.includes(v)) expected = "replayed";
  else expected = "fresh";
  if (expected === "fresh") accepted.push(v);
  return expected;
}
