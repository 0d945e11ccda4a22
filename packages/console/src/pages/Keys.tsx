import { generateKeyPair } from "@portcullis/client";
import { type ReactNode, useEffect, useState } from "react";
import { type Api, type KeyRecord, holds } from "../api.js";
import { credentialText, download } from "../credential.js";
import { Confirm, Copy, ErrorBox, Json, ago, useAction, useLoad, when } from "../ui.js";

/**
 * Keys: a server-paged table (50 a page, `after` cursor, `q` search, status and account filters),
 * the risk column for the visible page, a key's detail (risk profile and sensitivities; rotate,
 * suspend, resume, revoke after a confirmation) and the create form (an Ed25519 key pair generated
 * here by default: only the public half is sent).
 */

const PAGE = 50;
/** The permission catalogue (packages/portcullis/src/contract/permissions.ts), for the checkboxes. */
export const SCOPES = ["read", "trade", "withdraw", "transfer", "admin:keys", "admin:policy", "admin:addresses", "admin:approvers", "admin:approvals", "admin:anomalies", "admin:audit", "admin:stats", "admin:*"] as const;

interface Page {
  readonly keys: readonly KeyRecord[];
  readonly next: string | null;
}

export function Keys({ api }: { readonly api: Api }): ReactNode {
  const [q, setQ] = useState("");
  const [search, setSearch] = useState("");
  const [status, setStatus] = useState("");
  const [account, setAccount] = useState("");
  // The cursors of the pages before this one (a stack: "previous" pops it).
  const [cursors, setCursors] = useState<readonly string[]>([]);
  const after = cursors.at(-1);
  const [selected, setSelected] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);

  const page = useLoad(
    () => api.call<Page>("GET", "/portcullis/v1/keys", undefined, { q: search, status, account: account.trim(), after, limit: PAGE }),
    [api, search, status, account, after],
  );
  const ids = (page.data?.keys ?? []).map((k) => k.id).join(",");
  const risk = useLoad(
    async () => {
      if (ids === "") return { scores: {} };
      const answer = await api.call<{ scores?: unknown }>("GET", "/portcullis/v1/risk", undefined, { keys: ids });
      // An admin API without `risk?keys=` answers another shape: no scores, rather than a broken page.
      return { scores: typeof answer.scores === "object" && answer.scores !== null ? (answer.scores as Record<string, number>) : {} };
    },
    [api, ids],
  );
  // Debounced search: the server searches; the browser never holds more than a page.
  useEffect(() => {
    const t = setTimeout(() => {
      setSearch(q.trim());
      setCursors([]);
    }, 250);
    return () => {
      clearTimeout(t);
    };
  }, [q]);

  return (
    <section aria-labelledby="keys-title" data-testid="page-keys">
      <h1 id="keys-title">Keys</h1>
      <form className="filters" role="search" onSubmit={(e) => { e.preventDefault(); }}>
        <label>
          Search{" "}
          <input type="search" value={q} maxLength={100} onChange={(e) => { setQ(e.target.value); }} placeholder="key id, account or label" data-testid="keys-search" />
        </label>
        <label>
          Status{" "}
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.target.value);
              setCursors([]);
            }}
            data-testid="keys-status"
          >
            <option value="">any</option>
            <option value="active">active</option>
            <option value="suspended">suspended</option>
            <option value="revoked">revoked</option>
          </select>
        </label>
        {api.identity.operator ? (
          <label>
            Account{" "}
            <input
              value={account}
              onChange={(e) => {
                setAccount(e.target.value);
                setCursors([]);
              }}
              data-testid="keys-account"
            />
          </label>
        ) : null}
        <button type="button" className="primary" onClick={() => { setCreating(true); }} data-testid="key-create-open">
          Create key
        </button>
      </form>
      {creating ? (
        <CreateKey
          api={api}
          onClose={(id) => {
            setCreating(false);
            if (id !== null) {
              page.reload();
              setSelected(id);
            }
          }}
        />
      ) : null}
      <ErrorBox error={page.error} />
      <table data-testid="keys-table" aria-busy={page.loading}>
        <thead>
          <tr>
            <th scope="col">key</th>
            <th scope="col">account</th>
            <th scope="col">status</th>
            <th scope="col">scopes</th>
            <th scope="col">guardrails</th>
            <th scope="col">last use</th>
            <th scope="col">risk</th>
          </tr>
        </thead>
        <tbody>
          {(page.data?.keys ?? []).map((k) => (
            <tr key={k.id} data-testid={`key-row-${k.id}`} className={selected === k.id ? "selected" : undefined}>
              <td>
                <button type="button" className="link" onClick={() => { setSelected(k.id); }} data-testid={`key-open-${k.id}`}>
                  <code>{k.id}</code>
                </button>
                <div className="muted">{k.label ?? ""}</div>
              </td>
              <td>{k.account}</td>
              <td>
                <span className={`status ${k.effectiveStatus ?? k.status}`} data-testid={`key-status-${k.id}`}>
                  {k.effectiveStatus ?? k.status}
                </span>
                {k.operator === true ? <span className="tag">operator</span> : null}
              </td>
              <td>{k.scopes.join(", ")}</td>
              <td>{guardrailSummary(k.guardrails)}</td>
              <td title={when(k.lastUsedAt)}>{ago(k.lastUsedAt)}</td>
              <td data-testid={`key-risk-${k.id}`}>{risk.data?.scores[k.id] ?? "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {page.data?.keys.length === 0 ? <p className="muted">No keys match.</p> : null}
      <nav className="pager" aria-label="pages">
        <button type="button" disabled={cursors.length === 0} onClick={() => { setCursors((c) => c.slice(0, -1)); }} data-testid="keys-prev">
          Previous
        </button>
        <span>page {cursors.length + 1}</span>
        <button
          type="button"
          disabled={page.data?.next === null || page.data === null}
          onClick={() => {
            const next = page.data?.next;
            if (typeof next === "string") setCursors((c) => [...c, next]);
          }}
          data-testid="keys-next"
        >
          Next
        </button>
      </nav>
      {selected !== null ? (
        <KeyDetail
          api={api}
          id={selected}
          onChanged={() => { page.reload(); }}
          onSelect={setSelected}
          onClose={() => { setSelected(null); }}
        />
      ) : null}
    </section>
  );
}

function guardrailSummary(g: KeyRecord["guardrails"]): string {
  if (g === null || g === undefined) return "—";
  return Object.entries(g)
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(",") : String(v)}`)
    .join("; ");
}

interface Sensitivity {
  readonly control: string;
  readonly change: string;
  readonly description: string;
  readonly riskScoreDelta: number;
}
interface RiskProfile {
  readonly riskScore: number;
  readonly usable: boolean;
  readonly scoreParts: Readonly<Record<string, number>>;
  readonly exposure: unknown;
  readonly sensitivities: readonly Sensitivity[];
}

type KeyAction = "suspend" | "resume" | "revoke" | "rotate";

function KeyDetail(props: { readonly api: Api; readonly id: string; readonly onChanged: () => void; readonly onSelect: (id: string) => void; readonly onClose: () => void }): ReactNode {
  const { api, id } = props;
  const key = useLoad(() => api.call<KeyRecord>("GET", `/portcullis/v1/keys/${encodeURIComponent(id)}`), [api, id]);
  const risk = useLoad(() => api.call<RiskProfile>("GET", `/portcullis/v1/keys/${encodeURIComponent(id)}/risk`), [api, id]);
  const action = useAction();
  const [pending, setPending] = useState<KeyAction | null>(null);
  const [reason, setReason] = useState("");
  const [rotated, setRotated] = useState<{ id: string; secret: string | null; credential: string | null } | null>(null);
  const k = key.data;

  async function perform(what: KeyAction): Promise<void> {
    const path = `/portcullis/v1/keys/${encodeURIComponent(id)}/${what}`;
    if (what === "rotate") {
      if (k === null) return;
      // An asymmetric key moves to a new Ed25519 pair made here; an HMAC key gets a new secret.
      const pair = k.algorithm === "hmac-sha256" ? null : await generateKeyPair("ed25519");
      const made = await action.run(() => api.call<KeyRecord & { secret?: string }>("POST", path, pair === null ? { grace: "24h" } : { grace: "24h", publicKey: pair.publicKeyPem }));
      if (made === undefined) return;
      setRotated({ id: made.id, secret: made.secret ?? null, credential: pair === null ? null : credentialText(made.id, pair.privateKeyPem) });
    } else {
      const body = what === "resume" ? {} : reason.trim() === "" ? {} : { reason: reason.trim() };
      if ((await action.run(() => api.call("POST", path, body))) === undefined) return;
    }
    key.reload();
    risk.reload();
    props.onChanged();
  }

  return (
    <aside className="detail" aria-labelledby="key-detail-title" data-testid="key-detail">
      <header>
        <h2 id="key-detail-title">
          Key <code>{id}</code>
        </h2>
        <button type="button" onClick={props.onClose} aria-label="Close the key's details">
          ×
        </button>
      </header>
      <ErrorBox error={key.error ?? action.error} />
      {k !== null ? (
        <>
          <dl className="facts">
            <dt>status</dt>
            <dd data-testid="detail-status">{k.effectiveStatus ?? k.status}</dd>
            <dt>account</dt>
            <dd>{k.account}</dd>
            <dt>algorithm</dt>
            <dd>{k.algorithm}</dd>
            <dt>scopes</dt>
            <dd>{k.scopes.join(", ")}</dd>
            <dt>IP allowlist</dt>
            <dd>{k.ipAllowlist === null || k.ipAllowlist.length === 0 ? "anywhere" : k.ipAllowlist.join(", ")}</dd>
            <dt>guardrails</dt>
            <dd>{guardrailSummary(k.guardrails)}</dd>
            <dt>expires</dt>
            <dd>{when(k.expiresAt)}</dd>
            <dt>last use</dt>
            <dd>{when(k.lastUsedAt)}</dd>
            {k.rotatedTo !== null && k.rotatedTo !== undefined ? (
              <>
                <dt>rotated to</dt>
                <dd>
                  <button type="button" className="link" onClick={() => { props.onSelect(k.rotatedTo ?? id); }}>
                    <code>{k.rotatedTo}</code>
                  </button>
                </dd>
              </>
            ) : null}
          </dl>
          <div className="actions">
            {k.status === "active" ? (
              <button type="button" onClick={() => { setPending("suspend"); }} data-testid="key-suspend">
                Suspend
              </button>
            ) : null}
            {k.status === "suspended" ? (
              <button type="button" onClick={() => { setPending("resume"); }} data-testid="key-resume">
                Resume
              </button>
            ) : null}
            {k.status !== "revoked" && (k.rotatedTo ?? null) === null ? (
              <button type="button" onClick={() => { setPending("rotate"); }} data-testid="key-rotate">
                Rotate
              </button>
            ) : null}
            {k.status !== "revoked" ? (
              <button type="button" className="danger" onClick={() => { setPending("revoke"); }} data-testid="key-revoke">
                Revoke
              </button>
            ) : null}
          </div>
        </>
      ) : null}
      {rotated !== null ? (
        <div className="notice" role="status" data-testid="rotated">
          <p>
            Successor <code>{rotated.id}</code> created; the old key works for 24 h more.
          </p>
          {rotated.secret !== null ? <Secret secret={rotated.secret} /> : null}
          {rotated.credential !== null ? (
            <button type="button" className="primary" onClick={() => { download(`${rotated.id}.json`, rotated.credential ?? ""); }}>
              Download the new credential file
            </button>
          ) : null}
        </div>
      ) : null}
      <h3>Risk profile</h3>
      <ErrorBox error={risk.error} />
      {risk.data !== null ? (
        <div data-testid="risk-profile">
          <p>
            score <strong data-testid="risk-score">{risk.data.riskScore}</strong> / 100 {risk.data.usable ? "" : "(not usable now)"} —{" "}
            {Object.entries(risk.data.scoreParts)
              .map(([part, points]) => `${part} ${String(points)}`)
              .join(", ")}
          </p>
          <h4>Sensitivities (largest reduction first)</h4>
          <table data-testid="risk-sensitivities">
            <tbody>
              {risk.data.sensitivities.map((s) => (
                <tr key={`${s.control}-${s.change}`}>
                  <td className={s.riskScoreDelta < 0 ? "good" : "bad"}>{s.riskScoreDelta > 0 ? `+${String(s.riskScoreDelta)}` : s.riskScoreDelta}</td>
                  <td>{s.description}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <details>
            <summary>Exposure</summary>
            <Json value={risk.data.exposure} />
          </details>
        </div>
      ) : null}
      <Confirm
        open={pending !== null}
        title={`${pending ?? ""} key ${id}?`}
        confirmLabel={pending === null ? "OK" : `${pending.charAt(0).toUpperCase()}${pending.slice(1)}`}
        danger={pending === "revoke"}
        onCancel={() => { setPending(null); }}
        onConfirm={() => {
          const what = pending;
          setPending(null);
          if (what !== null) void perform(what);
        }}
      >
        {pending === "revoke" ? <p>A revoked key is refused everywhere at once, for good; its pending held operations are cancelled.</p> : null}
        {pending === "suspend" ? <p>The key is refused until it is resumed; its pending held operations are cancelled.</p> : null}
        {pending === "rotate" ? <p>A successor is created with the same settings; the old key keeps working for 24 h.</p> : null}
        {pending === "suspend" || pending === "revoke" ? (
          <label>
            Reason <input value={reason} onChange={(e) => { setReason(e.target.value); }} data-testid="confirm-reason" />
          </label>
        ) : null}
      </Confirm>
    </aside>
  );
}

function Secret({ secret }: { readonly secret: string }): ReactNode {
  return (
    <div className="secret" data-testid="hmac-secret">
      <p>
        <strong>The secret, shown this once:</strong> store it now.
      </p>
      <code data-testid="hmac-secret-value">{secret}</code> <Copy text={secret} />
    </div>
  );
}

function list(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** The create form. Ed25519 by default: the pair is generated here and only the public half is sent. */
function CreateKey({ api, onClose }: { readonly api: Api; readonly onClose: (id: string | null) => void }): ReactNode {
  const [account, setAccount] = useState(api.identity.operator ? "" : (api.identity.account ?? ""));
  const [label, setLabel] = useState("");
  const [scopes, setScopes] = useState<ReadonlySet<string>>(new Set(["read"]));
  const [ips, setIps] = useState("");
  const [expires, setExpires] = useState("90d");
  const [kind, setKind] = useState<"ed25519" | "hmac">("ed25519");
  const [g, setG] = useState({ symbols: "", maxQuantity: "", maxNotional: "", priceBandPct: "", withdrawAssets: "", transferAssets: "" });
  const action = useAction();
  const [made, setMade] = useState<{ id: string; secret: string | null; credential: string | null } | null>(null);

  async function submit(): Promise<void> {
    const guardrails: Record<string, unknown> = {};
    for (const f of ["symbols", "withdrawAssets", "transferAssets"] as const) if (g[f].trim() !== "") guardrails[f] = list(g[f]);
    for (const f of ["maxQuantity", "maxNotional", "priceBandPct"] as const) if (g[f].trim() !== "") guardrails[f] = g[f].trim();
    const body: Record<string, unknown> = { account: account.trim(), scopes: [...scopes] };
    if (label.trim() !== "") body.label = label.trim();
    if (list(ips).length > 0) body.ipAllowlist = list(ips);
    if (expires.trim() !== "") body.expires = expires.trim();
    if (Object.keys(guardrails).length > 0) body.guardrails = guardrails;
    await action.run(async () => {
      const pair = kind === "ed25519" ? await generateKeyPair("ed25519") : null;
      if (pair !== null) {
        body.algorithm = "ed25519";
        body.publicKey = pair.publicKeyPem;
      }
      const key = await api.call<KeyRecord & { secret?: string }>("POST", "/portcullis/v1/keys", body);
      setMade({ id: key.id, secret: key.secret ?? null, credential: pair === null ? null : credentialText(key.id, pair.privateKeyPem) });
    });
  }

  if (made !== null) {
    return (
      <div className="panel" role="status" data-testid="key-created">
        <h2>
          Key <code data-testid="created-key-id">{made.id}</code> created
        </h2>
        {made.credential !== null ? (
          <>
            <p>The private key was generated in this browser and was never sent. Download it now: it is not kept anywhere.</p>
            <button type="button" className="primary" onClick={() => { download(`${made.id}.json`, made.credential ?? ""); }} data-testid="download-credential">
              Download the credential file
            </button>
          </>
        ) : null}
        {made.secret !== null ? <Secret secret={made.secret} /> : null}
        <button type="button" onClick={() => { onClose(made.id); }} data-testid="key-created-done">
          Done
        </button>
      </div>
    );
  }

  return (
    <form
      className="panel"
      aria-labelledby="create-title"
      data-testid="key-create-form"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <h2 id="create-title">Create a key</h2>
      <ErrorBox error={action.error} />
      <div className="form-grid">
        <label>
          Account <input required value={account} onChange={(e) => { setAccount(e.target.value); }} readOnly={!api.identity.operator} data-testid="create-account" />
        </label>
        <label>
          Label <input value={label} onChange={(e) => { setLabel(e.target.value); }} data-testid="create-label" />
        </label>
        <label>
          Expires <input value={expires} onChange={(e) => { setExpires(e.target.value); }} placeholder="90d, 12h or an ISO time" data-testid="create-expires" />
        </label>
        <label>
          IP allowlist <input value={ips} onChange={(e) => { setIps(e.target.value); }} placeholder="203.0.113.0/24, 2001:db8::/32" data-testid="create-ips" />
        </label>
      </div>
      <fieldset>
        <legend>Permissions</legend>
        {SCOPES.filter((s) => api.identity.operator || holds(api.identity, s) || !s.startsWith("admin:")).map((s) => (
          <label key={s} className="check">
            <input
              type="checkbox"
              checked={scopes.has(s)}
              onChange={(e) => {
                const next = new Set(scopes);
                if (e.target.checked) next.add(s);
                else next.delete(s);
                setScopes(next);
              }}
              data-testid={`scope-${s}`}
            />{" "}
            {s}
          </label>
        ))}
      </fieldset>
      <fieldset>
        <legend>Guardrails (optional)</legend>
        <div className="form-grid">
          {(
            [
              ["symbols", "Symbols", "BTCUSDT, ETHUSDT"],
              ["maxQuantity", "Max quantity", "2.5"],
              ["maxNotional", "Max notional", "50000"],
              ["priceBandPct", "Price band %", "5"],
              ["withdrawAssets", "Withdraw assets", "USDT, BTC"],
              ["transferAssets", "Transfer assets", "USDT"],
            ] as const
          ).map(([f, name, hint]) => (
            <label key={f}>
              {name}{" "}
              <input
                value={g[f]}
                placeholder={hint}
                onChange={(e) => {
                  setG({ ...g, [f]: e.target.value });
                }}
                data-testid={`create-${f}`}
              />
            </label>
          ))}
        </div>
      </fieldset>
      <fieldset>
        <legend>Credential</legend>
        <label className="check">
          <input type="radio" name="kind" checked={kind === "ed25519"} onChange={() => { setKind("ed25519"); }} data-testid="kind-ed25519" /> Ed25519 key pair, generated in this browser
          (recommended: the private key never leaves it)
        </label>
        <label className="check">
          <input type="radio" name="kind" checked={kind === "hmac"} onChange={() => { setKind("hmac"); }} data-testid="kind-hmac" /> HMAC secret (shown once)
        </label>
      </fieldset>
      <div className="actions">
        <button type="button" onClick={() => { onClose(null); }}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={action.busy} data-testid="create-submit">
          Create
        </button>
      </div>
    </form>
  );
}
