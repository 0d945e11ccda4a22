import { type ReactNode, useState } from "react";
import type { Api } from "../api.js";
import { download } from "../credential.js";
import { ErrorBox, Json, useAction, useLoad, when } from "../ui.js";

/** The audit log: search and filters, CSV / JSON Lines export, chain status and verification. */

interface Entry {
  readonly seq: number;
  readonly at: number | string;
  readonly event: string;
  readonly actor?: string;
  readonly key?: string;
  readonly account?: string;
  readonly code?: string;
  readonly method?: string;
  readonly path?: string;
  readonly [field: string]: unknown;
}
interface Status {
  readonly entries: number;
  readonly head: { readonly seq: number; readonly hash: string; readonly at: number } | null;
  readonly lastCheckpoint: { readonly seq: number; readonly at: number } | null;
  readonly archivedThrough: number | null;
}
interface Verification {
  readonly ok: boolean;
  readonly entries: number;
  readonly checkpoints: number;
  readonly problems: readonly { readonly code: string; readonly seq?: number; readonly message: string }[];
}

export function Audit({ api }: { readonly api: Api }): ReactNode {
  const [form, setForm] = useState({ key: "", account: "", event: "", since: "", until: "" });
  const [filters, setFilters] = useState(form);
  const [cursors, setCursors] = useState<readonly number[]>([]);
  const after = cursors.at(-1);
  const query = (): Record<string, string> => {
    const q: Record<string, string> = {};
    // Times go as typed: the server takes an ISO-8601 time, epoch milliseconds or a duration ago ("1h").
    for (const [k, v] of Object.entries(filters)) if (v.trim() !== "") q[k] = v.trim();
    return q;
  };
  const entries = useLoad(
    () => api.call<{ entries: Entry[]; next: number | null }>("GET", "/portcullis/v1/audit/entries", undefined, { ...query(), after, limit: 100 }),
    [api, filters, after],
  );
  const status = useLoad(() => (api.identity.operator ? api.call<Status>("GET", "/portcullis/v1/audit/status") : Promise.resolve(null)), [api]);
  const verify = useAction();
  const [verified, setVerified] = useState<Verification | null>(null);
  const exporting = useAction();

  async function exportAs(format: "csv" | "jsonl"): Promise<void> {
    await exporting.run(async () => {
      const response = await api.raw("GET", "/portcullis/v1/audit/export", { ...query(), format });
      download(`portcullis-audit.${format}`, await response.blob());
    });
  }

  return (
    <section aria-labelledby="audit-title" data-testid="page-audit">
      <h1 id="audit-title">Audit</h1>
      {api.identity.operator ? (
        <div className="panel" data-testid="audit-status">
          <h2>Chain</h2>
          <ErrorBox error={status.error ?? verify.error} />
          {status.data !== null ? (
            <p>
              {status.data.entries} entries; head {status.data.head === null ? "none" : `#${String(status.data.head.seq)} ${status.data.head.hash.slice(0, 16)}… at ${when(status.data.head.at)}`}; last checkpoint{" "}
              {status.data.lastCheckpoint === null ? "none" : `#${String(status.data.lastCheckpoint.seq)} at ${when(status.data.lastCheckpoint.at)}`}
              {status.data.archivedThrough === null ? "" : `; archived through #${String(status.data.archivedThrough)}`}
            </p>
          ) : null}
          <button
            type="button"
            disabled={verify.busy}
            data-testid="audit-verify"
            onClick={() => {
              setVerified(null);
              void verify.run(() => api.call<Verification>("POST", "/portcullis/v1/audit/verify", {})).then((v) => {
                if (v !== undefined) setVerified(v);
                status.reload();
              });
            }}
          >
            {verify.busy ? "Verifying…" : "Verify the chain"}
          </button>
          {verified !== null ? (
            <div data-testid="audit-verify-result" role="status" className={verified.ok ? "good" : "bad"}>
              {verified.ok ? "intact" : "PROBLEMS"}: {verified.entries} entries, {verified.checkpoints} checkpoints
              <ul>
                {verified.problems.map((p, i) => (
                  <li key={i}>
                    <code>{p.code}</code> {p.seq === undefined ? "" : `#${String(p.seq)}`} {p.message}
                  </li>
                ))}
              </ul>
            </div>
          ) : null}
        </div>
      ) : null}
      <form
        className="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setCursors([]);
          setFilters(form);
        }}
      >
        {(
          [
            ["key", "Key", "pck_…"],
            ["account", "Account", ""],
            ["event", "Event", "key.*"],
            ["since", "Since", "1h or 2026-12-06T00:00Z"],
            ["until", "Until", ""],
          ] as const
        ).map(([f, name, hint]) => (
          <label key={f}>
            {name}{" "}
            <input
              value={form[f]}
              placeholder={hint}
              onChange={(e) => {
                setForm({ ...form, [f]: e.target.value });
              }}
              data-testid={`audit-${f}`}
            />
          </label>
        ))}
        <button type="submit" className="primary" data-testid="audit-search">
          Search
        </button>
        <button type="button" onClick={() => void exportAs("csv")} disabled={exporting.busy} data-testid="audit-export-csv">
          Export CSV
        </button>
        <button type="button" onClick={() => void exportAs("jsonl")} disabled={exporting.busy} data-testid="audit-export-jsonl">
          Export JSON Lines
        </button>
      </form>
      <ErrorBox error={entries.error ?? exporting.error} />
      <table data-testid="audit-table">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">at</th>
            <th scope="col">event</th>
            <th scope="col">actor</th>
            <th scope="col">key</th>
            <th scope="col">account</th>
            <th scope="col">what</th>
            <th scope="col">details</th>
          </tr>
        </thead>
        <tbody>
          {(entries.data?.entries ?? []).map((e) => (
            <tr key={e.seq}>
              <td>{e.seq}</td>
              <td>{typeof e.at === "number" ? when(e.at) : e.at}</td>
              <td>
                <code>{e.event}</code>
              </td>
              <td>{e.actor ?? ""}</td>
              <td>
                <code>{e.key ?? ""}</code>
              </td>
              <td>{e.account ?? ""}</td>
              <td>
                {e.method === undefined ? "" : `${e.method} ${e.path ?? ""}`} {e.code === undefined ? "" : <code>{e.code}</code>}
              </td>
              <td>
                <details>
                  <summary>entry</summary>
                  <Json value={e} />
                </details>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <nav className="pager" aria-label="pages">
        <button type="button" disabled={cursors.length === 0} onClick={() => { setCursors((c) => c.slice(0, -1)); }}>
          Previous
        </button>
        <span>page {cursors.length + 1}</span>
        <button
          type="button"
          disabled={typeof entries.data?.next !== "number"}
          onClick={() => {
            const next = entries.data?.next;
            if (typeof next === "number") setCursors((c) => [...c, next]);
          }}
        >
          Next
        </button>
      </nav>
    </section>
  );
}
