import { type ReactNode, useState } from "react";
import type { Api } from "../api.js";
import { Confirm, ErrorBox, useAction, useLoad, when } from "../ui.js";

/** What GET /portcullis/v1/anomalies lists (contract/behaviour.ts AnomalyActionRecord). */
export interface AnomalyAction {
  readonly id: string;
  readonly keyId: string;
  readonly account: string;
  readonly action: string;
  readonly score: number;
  readonly at: number;
  readonly state: string;
  readonly dueAt: number | null;
  readonly undoneAt: number | null;
  readonly undoneBy: string | null;
  readonly explanation: {
    readonly score: number;
    readonly basis: string;
    readonly seen: number;
    readonly contributions: readonly { readonly feature: string; readonly observed: string; readonly baseline: string; readonly deviation: number; readonly points: number }[];
  };
}

/** The behaviour stage's actions with their explanations; undo. */
export function Anomalies({ api }: { readonly api: Api }): ReactNode {
  const [state, setState] = useState("");
  const [key, setKey] = useState("");
  const list = useLoad(() => api.call<{ actions: AnomalyAction[] }>("GET", "/portcullis/v1/anomalies", undefined, { state, key: key.trim(), limit: 100 }), [api, state, key]);
  const action = useAction();
  const [undoing, setUndoing] = useState<AnomalyAction | null>(null);

  return (
    <section aria-labelledby="anomalies-title" data-testid="page-anomalies">
      <h1 id="anomalies-title">Anomalies</h1>
      <form className="filters" onSubmit={(e) => { e.preventDefault(); }}>
        <label>
          State{" "}
          <select value={state} onChange={(e) => { setState(e.target.value); }} data-testid="anomaly-state">
            <option value="">any</option>
            <option value="active">active</option>
            <option value="undone">undone</option>
            <option value="done">done</option>
          </select>
        </label>
        <label>
          Key <input value={key} onChange={(e) => { setKey(e.target.value); }} placeholder="pck_…" />
        </label>
      </form>
      <ErrorBox error={list.error ?? action.error} />
      <table data-testid="anomalies-table">
        <thead>
          <tr>
            <th scope="col">when</th>
            <th scope="col">key</th>
            <th scope="col">action</th>
            <th scope="col">score</th>
            <th scope="col">why</th>
            <th scope="col">state</th>
            <th scope="col" />
          </tr>
        </thead>
        <tbody>
          {(list.data?.actions ?? []).map((a) => (
            <tr key={a.id} data-testid={`anomaly-${a.id}`}>
              <td>{when(a.at)}</td>
              <td>
                <code>{a.keyId}</code>
                <div className="muted">{a.account}</div>
              </td>
              <td>{a.action}</td>
              <td>{a.score}</td>
              <td>
                <ul className="explanation">
                  {a.explanation.contributions.map((c) => (
                    <li key={c.feature}>
                      <strong>{c.feature}</strong> +{c.points}: {c.observed} (usual: {c.baseline})
                    </li>
                  ))}
                </ul>
                <span className="muted">
                  compared with {a.explanation.basis}, {a.explanation.seen} events seen
                </span>
              </td>
              <td>
                {a.state}
                {a.dueAt !== null && a.state === "active" ? <div className="muted">revoked at {when(a.dueAt)} unless undone</div> : null}
                {a.undoneBy !== null ? <div className="muted">undone by {a.undoneBy}</div> : null}
              </td>
              <td>
                {a.state === "active" ? (
                  <button type="button" onClick={() => { setUndoing(a); }} data-testid={`undo-${a.id}`}>
                    Undo
                  </button>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data?.actions.length === 0 ? <p className="muted">No anomaly actions.</p> : null}
      <Confirm
        open={undoing !== null}
        title="Undo this action?"
        confirmLabel="Undo"
        onCancel={() => { setUndoing(null); }}
        onConfirm={() => {
          const a = undoing;
          setUndoing(null);
          if (a === null) return;
          void action.run(() => api.call("POST", `/portcullis/v1/anomalies/${encodeURIComponent(a.id)}/undo`, {})).then(() => {
            list.reload();
          });
        }}
      >
        <p>
          {undoing?.action} on <code>{undoing?.keyId}</code>: a step-up or throttle is cleared, a suspension resumed, a pending revoke cancelled.
        </p>
      </Confirm>
    </section>
  );
}
