import { type ReactNode, useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

/**
 * A time series chart (uPlot: ~50 KB, canvas, no inline styles a CSP would refuse). x in epoch
 * seconds; one series per name.
 */
export interface Series {
  readonly name: string;
  readonly values: readonly number[];
  readonly color: string;
}

export function TimeChart(props: { readonly title: string; readonly times: readonly number[]; readonly series: readonly Series[]; readonly testid: string }): ReactNode {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = props.series.map((s) => `${s.name}:${s.color}`).join("|");

  useEffect(() => {
    const el = host.current;
    if (el === null) return;
    const opts: uPlot.Options = {
      width: Math.max(320, el.clientWidth),
      height: 220,
      series: [{}, ...props.series.map((s) => ({ label: s.name, stroke: s.color, width: 2, fill: `${s.color}22` }))],
      axes: [{}, { size: 50 }],
      legend: { show: true },
    };
    const u = new uPlot(opts, [[...props.times], ...props.series.map((s) => [...s.values])], el);
    plot.current = u;
    const resize = new ResizeObserver(() => {
      u.setSize({ width: Math.max(320, el.clientWidth), height: 220 });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Rebuilt only when the set of series changes; new data goes through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape]);

  useEffect(() => {
    plot.current?.setData([[...props.times], ...props.series.map((s) => [...s.values])]);
  }, [props.times, props.series]);

  return (
    <figure className="chart" data-testid={props.testid}>
      <figcaption>{props.title}</figcaption>
      <div ref={host} />
    </figure>
  );
}

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

export function color(i: number): string {
  return PALETTE[i % PALETTE.length] ?? "#4b5563";
}
