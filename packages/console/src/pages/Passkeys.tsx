import { type ReactNode, useState } from "react";
import type { Api } from "../api.js";
import { MAX_PASSKEY_LABEL, type Passkey, listPasskeys, passkeyObstacle, registerPasskey, removePasskey } from "../passkeys.js";
import { Confirm, ErrorBox, ago, useAction, useLoad, when } from "../ui.js";

/**
 * The signed-in key's passkeys (docs/console.md "Passkeys"): list, register one on this device,
 * remove one. Every user reaches it from the header, whatever their pages: a passkey belongs to
 * the user's own key, and the API decides who may have one (an admin key, with every scope of the
 * key in this session).
 */
export function Passkeys({ api }: { readonly api: Api }): ReactNode {
  const list = useLoad(() => listPasskeys(api), [api]);
  const action = useAction();
  const [label, setLabel] = useState("");
  const [added, setAdded] = useState<Passkey | null>(null);
  const [removing, setRemoving] = useState<Passkey | null>(null);
  const obstacle = passkeyObstacle();

  async function register(): Promise<void> {
    setAdded(null);
    const passkey = await action.run(() => registerPasskey(api, label.trim()));
    if (passkey !== undefined) {
      setAdded(passkey);
      setLabel("");
      list.reload();
    }
  }

  return (
    <section aria-labelledby="passkeys-title" data-testid="page-passkeys">
      <h1 id="passkeys-title">Passkeys</h1>
      <p className="muted">
        Passkeys of <code>{api.identity.keyId}</code>: each signs in to this console as this key, with all its scopes, after the device checks it is you (fingerprint, face,
        PIN). Registering one is signed by the key itself (a session may not), so it needs a sign-in with the key's credential file; removing one does not end the sessions it opened.
      </p>
      {obstacle === null ? null : (
        <p className="notice" data-testid="passkey-obstacle">
          {obstacle.reason}{" "}
          {obstacle.localUrl === null ? null : (
            <a href={obstacle.localUrl} data-testid="passkey-local-url">
              {obstacle.localUrl}
            </a>
          )}
        </p>
      )}
      {api.signsWithKey ? null : (
        <p className="notice" data-testid="passkey-needs-key">
          Signed in with a passkey: to register another, sign in with the key&apos;s credential file (only the key itself may register a passkey).
        </p>
      )}
      <ErrorBox error={list.error ?? action.error} />
      <form
        className="filters panel"
        data-testid="passkey-register-form"
        onSubmit={(e) => {
          e.preventDefault();
          void register();
        }}
      >
        <label>
          Label (this device)
          <input
            value={label}
            maxLength={MAX_PASSKEY_LABEL}
            placeholder="MacBook, YubiKey…"
            onChange={(e) => {
              setLabel(e.target.value);
            }}
            data-testid="passkey-label"
          />
        </label>
        <button type="submit" className="primary" disabled={action.busy || obstacle !== null || !api.signsWithKey} data-testid="passkey-register">
          {action.busy ? "Waiting for the device…" : "Register a passkey"}
        </button>
      </form>
      {added === null ? null : (
        <p className="notice" role="status" data-testid="passkey-added">
          Passkey <strong>{added.label}</strong> registered: sign in with it from the sign-in page on this site.
        </p>
      )}
      <table data-testid="passkeys-table">
        <thead>
          <tr>
            <th scope="col">label</th>
            <th scope="col">credential id</th>
            <th scope="col">registered</th>
            <th scope="col">last used</th>
            <th scope="col">transports</th>
            <th scope="col" />
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((p) => (
            <tr key={p.id} data-testid={`passkey-row-${p.id}`}>
              <td>
                {p.label}
                {p.id === api.identity.passkeyId ? <span className="tag">this session</span> : null}
              </td>
              <td>
                <code title={p.id}>{p.id.length > 20 ? `${p.id.slice(0, 20)}…` : p.id}</code>
              </td>
              <td>{when(p.createdAt)}</td>
              <td>{ago(p.lastUsedAt)}</td>
              <td>{p.transports.length === 0 ? "—" : p.transports.join(", ")}</td>
              <td>
                <button
                  type="button"
                  className="danger"
                  disabled={action.busy}
                  onClick={() => {
                    setRemoving(p);
                  }}
                  data-testid={`passkey-remove-${p.id}`}
                >
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data?.length === 0 ? (
        <p className="muted" data-testid="passkeys-none">
          No passkey yet.
        </p>
      ) : null}
      <Confirm
        open={removing !== null}
        title={`Remove the passkey "${removing?.label ?? ""}"?`}
        confirmLabel="Remove"
        danger
        onCancel={() => {
          setRemoving(null);
        }}
        onConfirm={() => {
          const target = removing;
          setRemoving(null);
          if (target === null) return;
          void action.run(() => removePasskey(api, target.id)).then((removed) => {
            if (removed !== undefined) list.reload();
          });
        }}
      >
        <p>
          It will sign nobody in from now on (the device keeps a copy that the server no longer accepts; delete it in the device&apos;s settings too). Sessions it opened
          go on until they end{removing?.id === api.identity.passkeyId ? ", this one included" : ""}.
        </p>
      </Confirm>
    </section>
  );
}
