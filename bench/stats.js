import { performance } from "node:perf_hooks";
/**
 * Small statistics and formatting helpers for the benchmark report. Everything is reported as
 * medians (robust to the odd slow batch on a shared VM) and as the median of per-pair ratios:
 * each pair is two variants measured back to back, so a slow period of the machine affects both
 * sides of a pair rather than one variant only.
 */

/** The q-quantile (0..1) of a list of numbers, by linear interpolation. NaN when empty. */
export function quantile(values, q) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function median(values) {
  return quantile(values, 0.5);
}

export function mean(values) {
  if (values.length === 0) return Number.NaN;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** Element-wise a[i] / b[i]: the per-pair ratios. */
export function pairRatios(a, b) {
  if (a.length !== b.length) throw new Error(`pair lists differ in length: ${a.length} vs ${b.length}`);
  return a.map((x, i) => x / b[i]);
}

/** A number with a fixed count of decimals, for tables. */
export function fmt(value, decimals = 2) {
  return Number.isFinite(value) ? value.toFixed(decimals) : "n/a";
}

/** "1.23× (p10–p90 1.10–1.40)": a median ratio with its spread over pairs. */
export function fmtRatio(ratios, decimals = 2) {
  return `${fmt(median(ratios), decimals)}× (p10–p90 ${fmt(quantile(ratios, 0.1), decimals)}–${fmt(quantile(ratios, 0.9), decimals)})`;
}

/** "85.3 %" */
export function fmtPercent(ratio) {
  return `${fmt(ratio * 100, 1)} %`;
}

/** A Markdown table from a header row and data rows (arrays of cell strings). */
export function table(header, rows) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/**
 * ns per call of `fn` in a tight loop over `iterations` calls, for each of `rounds` rounds (after a warm-up), and how many
 * calls answered something (a refusal, for the stages timed).
 */
export function timeLoop(fn, { rounds, iterations, warmup }) {
  let sink = 0;
  for (let i = 0; i < warmup; i++) if (fn() !== undefined) sink++;
  const out = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) if (fn() !== undefined) sink++;
    out.push(((performance.now() - t0) * 1e6) / iterations);
  }
  return { samples: out, refused: sink };
}
