import { type ReactNode, useEffect, useMemo, useState } from "react";
import { type Api, asApiError, holds } from "../api.js";
import { TimeChart, color } from "../Chart.js";
import { type Stats, followStats } from "../stats.js";
import { type ApiError, ErrorBox, ago, useLoad } from "../ui.js";
import type { AnomalyAction } from "./Anomalies.js";

/** Requests and refusals over time per surface and per code, top keys, recent anomalies: live. */
export function Overview({ api }: { readonly api: Api }): ReactNode {
  const [stats, setStats] = useState<Stats | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    const abort = new AbortController();
    void followStats(
      api,
      abort.signal,
      (s) => {
        setStats(s);
        setError(null);
      },
      (e) => {
        setError(asApiError(e));
      },
    );
    return () => {
      abort.abort();
    };
  }, [api]);
  const anomalies = useLoad(
    () => (holds(api.identity, "admin:anomalies") ? api.call<{ actions: AnomalyAction[] }>("GET", "/portcullis/v1/anomalies", undefined, { limit: 10 }) : Promise.resolve({ actions: [] })),
    [api],
  );

  const charts = useMemo(() => {
    if (stats === null) return null;
    const times = stats.buckets.map((b) => Math.floor(b.at / 1000));
    const surfaces = [...new Set(stats.buckets.flatMap((b) => Object.keys(b.bySurface)))].sort();
    const codes = [...new Set(stats.buckets.flatMap((b) => Object.keys(b.byCode)))].sort();
    const bySurface = surfaces.flatMap((s, i) => [
      { name: `${s} allowed`, color: color(2 * i + 2), values: stats.buckets.map((b) => b.bySurface[s]?.allowed ?? 0) },
      { name: `${s} refused`, color: color(2 * i + 1), values: stats.buckets.map((b) => b.bySurface[s]?.refused ?? 0) },
    ]);
    const byCode = codes.map((c, i) => ({ name: c, color: color(i), values: stats.buckets.map((b) => b.byCode[c] ?? 0) }));
    const total = [
      { name: "allowed", color: color(2), values: stats.buckets.map((b) => b.allowed) },
      { name: "refused", color: color(1), values: stats.buckets.map((b) => b.refused) },
    ];
    return { times, bySurface, byCode, total };
  }, [stats]);

  return (
    <section aria-labelledby="overview-title" data-testid="page-overview">
      <h1 id="overview-title">Overview</h1>
      <ErrorBox error={error} />
      {stats === null || charts === null ? (
        <p aria-busy="true">Waiting for the live statistics…</p>
      ) : (
        <>
          <div className="totals" data-testid="totals">
            <div>
              <span className="big" data-testid="total-allowed">
                {stats.totals.allowed}
              </span>{" "}
              allowed
            </div>
            <div>
              <span className="big" data-testid="total-refused">
                {stats.totals.refused}
              </span>{" "}
              refused
            </div>
            <div className="muted">
              last {Math.round(stats.windowMs / 60_000)} min, {Math.round(stats.bucketMs / 1000)} s buckets, updated {new Date(stats.now).toLocaleTimeString()}
            </div>
          </div>
          <div className="grid2">
            <TimeChart title="Requests and refusals" testid="chart-total" times={charts.times} series={charts.total} />
            <TimeChart title="Per surface" testid="chart-surface" times={charts.times} series={charts.bySurface} />
            <TimeChart title="Refusals per code" testid="chart-codes" times={charts.times} series={charts.byCode} />
            <div>
              <h2>Refusals per code</h2>
              <table data-testid="codes-table">
                <thead>
                  <tr>
                    <th scope="col">code</th>
                    <th scope="col">refusals</th>
                  </tr>
                </thead>
                <tbody>
                  {Object.entries(stats.totals.byCode)
                    .sort(([, a], [, b]) => b - a)
                    .map(([code, n]) => (
                      <tr key={code}>
                        <td>
                          <code>{code}</code>
                        </td>
                        <td>{n}</td>
                      </tr>
                    ))}
                </tbody>
              </table>
            </div>
          </div>
          <div className="grid2">
            <div>
              <h2>Top keys</h2>
              <table data-testid="top-keys">
                <thead>
                  <tr>
                    <th scope="col">key</th>
                    <th scope="col">account</th>
                    <th scope="col">requests</th>
                    <th scope="col">refused</th>
                  </tr>
                </thead>
                <tbody>
                  {stats.topKeys.map((k) => (
                    <tr key={k.keyId} data-testid={`top-key-${k.keyId}`}>
                      <td>
                        <code>{k.keyId}</code>
                      </td>
                      <td>{k.account ?? "—"}</td>
                      <td>{k.requests ?? 0}</td>
                      <td>{k.refused}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <div>
              <h2>Top refused keys</h2>
              <table data-testid="top-refused-keys">
                <thead>
                  <tr>
                    <th scope="col">key</th>
                    <th scope="col">account</th>
                    <th scope="col">refused</th>
                    <th scope="col">last code</th>
                  </tr>
                </thead>
                <tbody>
                  {stats.topRefusedKeys.map((k) => (
                    <tr key={k.keyId} data-testid={`top-refused-${k.keyId}`}>
                      <td>
                        <code>{k.keyId}</code>
                      </td>
                      <td>{k.account ?? "—"}</td>
                      <td>{k.refused}</td>
                      <td>
                        <code>{k.lastCode ?? "—"}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </div>
        </>
      )}
      <h2>Recent anomalies</h2>
      <ErrorBox error={anomalies.error} />
      <ul data-testid="recent-anomalies">
        {(anomalies.data?.actions ?? []).map((a) => (
          <li key={a.id}>
            <strong>{a.action}</strong> on <code>{a.keyId}</code> ({a.account}), score {a.score}, {ago(a.at)}: {a.explanation.contributions[0]?.feature ?? ""}{" "}
            {a.explanation.contributions[0]?.observed ?? ""}
          </li>
        ))}
        {anomalies.data?.actions.length === 0 ? <li className="muted">none</li> : null}
      </ul>
    </section>
  );
}
