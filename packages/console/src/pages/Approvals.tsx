import { importPrivateKey } from "@portcullis/client";
import { type ReactNode, useState } from "react";
import { type Api, ApiError } from "../api.js";
import { approvalMessage, digestOfDocument } from "../jcs.js";
import { Confirm, ErrorBox, Json, useAction, useLoad, when } from "../ui.js";

/**
 * Held operations (docs/approvals.md). Approving or rejecting signs, in this browser, the digest
 * recomputed here from the facts the admin API sends (never the digest it sends), with the
 * approver's own Ed25519 key file (PKCS#8 PEM): the same message `portcullis approvals approve`
 * signs. The key is imported for this one signature and not kept.
 */

interface Tier {
  readonly group: string;
  readonly count: number;
  readonly have: number;
}
interface OperationView {
  readonly operationId: string;
  readonly state: string;
  readonly kind: string;
  readonly account: string | null;
  readonly keyId: string | null;
  readonly owner: string | null;
  readonly reason: string | null;
  readonly required: { readonly approvals: readonly Tier[]; readonly notBefore: number | null; readonly expiresAt: number };
  readonly approvals: readonly { readonly approver: string; readonly decision: string; readonly group: string | null; readonly at: number }[];
}
interface Shown extends OperationView {
  readonly document: { readonly operationId: string } & Record<string, unknown>;
  readonly digest: string;
  readonly rendering: string;
}
interface Approver {
  readonly name: string;
  readonly groups: readonly string[];
  readonly publicKey: string;
}

const STATES = ["pending", "ready", "releasing", "released", "unknown", "cancelled", "rejected", "expired"];

export function Approvals({ api }: { readonly api: Api }): ReactNode {
  const [state, setState] = useState("pending");
  const list = useLoad(() => api.call<{ operations: OperationView[] }>("GET", "/portcullis/v1/approvals", undefined, { state }), [api, state]);
  const [open, setOpen] = useState<string | null>(null);
  return (
    <section aria-labelledby="approvals-title" data-testid="page-approvals">
      <h1 id="approvals-title">Approvals</h1>
      <form className="filters" onSubmit={(e) => { e.preventDefault(); }}>
        <label>
          State{" "}
          <select value={state} onChange={(e) => { setState(e.target.value); }} data-testid="approvals-state">
            <option value="">any</option>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => { list.reload(); }} data-testid="approvals-reload">
          Reload
        </button>
      </form>
      <ErrorBox error={list.error} />
      <table data-testid="approvals-table">
        <thead>
          <tr>
            <th scope="col">operation</th>
            <th scope="col">state</th>
            <th scope="col">kind</th>
            <th scope="col">account</th>
            <th scope="col">needs</th>
            <th scope="col">expires</th>
          </tr>
        </thead>
        <tbody>
          {(list.data?.operations ?? []).map((o) => (
            <tr key={o.operationId} data-testid={`operation-${o.operationId}`}>
              <td>
                <button type="button" className="link" onClick={() => { setOpen(o.operationId); }} data-testid={`operation-open-${o.operationId}`}>
                  <code>{o.operationId}</code>
                </button>
              </td>
              <td data-testid={`operation-state-${o.operationId}`}>{o.state}</td>
              <td>{o.kind}</td>
              <td>{o.account ?? "—"}</td>
              <td>{o.required.approvals.map((t) => `${String(t.have)}/${String(t.count)} ${t.group}`).join(", ") || "delay only"}</td>
              <td>{when(o.required.expiresAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data?.operations.length === 0 ? <p className="muted">No operations {state === "" ? "" : `in state ${state}`}.</p> : null}
      {open !== null ? (
        <Operation
          api={api}
          id={open}
          onChanged={() => { list.reload(); }}
          onClose={() => {
            setOpen(null);
          }}
        />
      ) : null}
    </section>
  );
}

const SPKI_ED25519_PREFIX = "MCowBQYDK2VwAyEA";

/** The SPKI PEM of an Ed25519 private key's public half (to find the approver it belongs to). */
async function publicPemOf(pkcs8Pem: string): Promise<string | null> {
  try {
    const der = Uint8Array.from(atob(pkcs8Pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "")), (c) => c.charCodeAt(0));
    const key = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, true, ["sign"]);
    const jwk = await crypto.subtle.exportKey("jwk", key);
    if (typeof jwk.x !== "string") return null;
    const x = Uint8Array.from(atob(jwk.x.replaceAll("-", "+").replaceAll("_", "/") + "="), (c) => c.charCodeAt(0));
    const spki = new Uint8Array([...Uint8Array.from(atob(SPKI_ED25519_PREFIX), (c) => c.charCodeAt(0)), ...x]);
    return `-----BEGIN PUBLIC KEY-----\n${btoa(String.fromCharCode(...spki))}\n-----END PUBLIC KEY-----\n`;
  } catch {
    return null;
  }
}

function base64(bytes: ArrayBuffer): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

function Operation(props: { readonly api: Api; readonly id: string; readonly onChanged: () => void; readonly onClose: () => void }): ReactNode {
  const { api, id } = props;
  const shown = useLoad(async () => {
    const op = await api.call<Shown>("GET", `/portcullis/v1/approvals/${encodeURIComponent(id)}`);
    // Recomputed here from the facts: a digest that does not match them is never signed.
    const digest = await digestOfDocument(op.document);
    return { op, digest, matches: digest === op.digest && op.document.operationId === op.operationId };
  }, [api, id]);
  const approvers = useLoad(() => api.call<{ approvers: Approver[] }>("GET", "/portcullis/v1/approvers"), [api]);
  const action = useAction();
  const [keyPem, setKeyPem] = useState<string | null>(null);
  const [keyName, setKeyName] = useState("");
  const [approver, setApprover] = useState("");
  const [reason, setReason] = useState("");
  const [confirm, setConfirm] = useState<"approve" | "reject" | null>(null);
  const data = shown.data;

  async function pickKey(file: File): Promise<void> {
    const text = await file.text();
    setKeyPem(text);
    setKeyName(file.name);
    const pub = await publicPemOf(text);
    const found = approvers.data?.approvers.find((a) => pub !== null && a.publicKey.trim() === pub.trim());
    setApprover(found?.name ?? file.name.replace(/\.pem$/i, ""));
  }

  async function decide(decision: "approve" | "reject"): Promise<void> {
    await action.run(async () => {
      if (data === null) throw new ApiError(0, "OPERATION_NOT_FOUND", "the operation is not loaded");
      if (!data.matches) throw new ApiError(0, "APPROVAL_DIGEST_MISMATCH", "the digest sent does not match the operation's facts; nothing was signed");
      if (keyPem === null) throw new ApiError(0, "VALIDATION_FAILED", "choose your approver key file (Ed25519, PKCS#8 PEM)");
      let key: CryptoKey;
      try {
        key = await importPrivateKey(keyPem, "ed25519");
      } catch (err) {
        throw new ApiError(0, "VALIDATION_FAILED", err instanceof Error ? err.message : "not an Ed25519 private key");
      }
      const signature = base64(await crypto.subtle.sign({ name: "Ed25519" }, key, approvalMessage(decision, data.digest)));
      const body: Record<string, string> = { approver: approver.trim(), digest: data.digest, signature };
      if (decision === "reject" && reason.trim() !== "") body.reason = reason.trim();
      await api.call("POST", `/portcullis/v1/approvals/${encodeURIComponent(id)}/${decision}`, body);
      setKeyPem(null);
      setKeyName("");
    });
    shown.reload();
    props.onChanged();
  }

  return (
    <aside className="detail" aria-labelledby="operation-title" data-testid="operation-detail">
      <header>
        <h2 id="operation-title">
          Operation <code>{id}</code>
        </h2>
        <button type="button" onClick={props.onClose} aria-label="Close the operation">
          ×
        </button>
      </header>
      <ErrorBox error={shown.error ?? action.error} />
      {data !== null ? (
        <>
          <p>
            State <strong data-testid="operation-state">{data.op.state}</strong>
          </p>
          <pre className="rendering" data-testid="operation-rendering">
            {data.op.rendering}
          </pre>
          <p>
            Digest <code data-testid="operation-digest">{data.digest}</code>{" "}
            {data.matches ? (
              <span className="good" data-testid="digest-ok">
                recomputed here: matches
              </span>
            ) : (
              <span className="bad" data-testid="digest-mismatch">
                does NOT match the facts sent: do not sign
              </span>
            )}
          </p>
          <details>
            <summary>The signed facts (digest document)</summary>
            <Json value={data.op.document} />
          </details>
          {data.op.state === "pending" && data.matches ? (
            <fieldset className="decide">
              <legend>Decide with your approver key</legend>
              <label>
                Approver key file (Ed25519, PKCS#8 PEM; read here, never sent){" "}
                <input
                  type="file"
                  accept=".pem,.key,text/plain"
                  data-testid="approver-key"
                  onChange={(e) => {
                    const f = e.target.files?.[0];
                    if (f !== undefined) void pickKey(f);
                  }}
                />
              </label>
              {keyName !== "" ? <span className="muted">{keyName}</span> : null}
              <label>
                Approver <input value={approver} onChange={(e) => { setApprover(e.target.value); }} data-testid="approver-name" />
              </label>
              <label>
                Reason (reject only, not signed) <input value={reason} onChange={(e) => { setReason(e.target.value); }} />
              </label>
              <div className="actions">
                <button type="button" className="primary" disabled={keyPem === null || action.busy} onClick={() => { setConfirm("approve"); }} data-testid="approve">
                  Approve
                </button>
                <button type="button" className="danger" disabled={keyPem === null || action.busy} onClick={() => { setConfirm("reject"); }} data-testid="reject">
                  Reject
                </button>
              </div>
            </fieldset>
          ) : null}
        </>
      ) : null}
      <Confirm
        open={confirm !== null}
        title={`${confirm === "reject" ? "Reject" : "Approve"} as ${approver}?`}
        confirmLabel={confirm === "reject" ? "Sign the rejection" : "Sign the approval"}
        danger={confirm === "reject"}
        onCancel={() => { setConfirm(null); }}
        onConfirm={() => {
          const d = confirm;
          setConfirm(null);
          if (d !== null) void decide(d);
        }}
      >
        <p>
          You sign <code>portcullis-approval/v1 {confirm} {data?.digest}</code> with your own key.
        </p>
      </Confirm>
    </aside>
  );
}
