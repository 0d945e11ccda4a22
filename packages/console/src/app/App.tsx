import { Component, type ErrorInfo, type ReactNode, useEffect, useState } from "react";
import { Api, ApiError, type Identity, asApiError, holds } from "../api.js";
import { parseCredential } from "../credential.js";
import { passkeyObstacle, signInWithPasskey } from "../passkeys.js";
import { Anomalies } from "../pages/Anomalies.js";
import { Approvals } from "../pages/Approvals.js";
import { Audit } from "../pages/Audit.js";
import { Keys } from "../pages/Keys.js";
import { Overview } from "../pages/Overview.js";
import { Passkeys } from "../pages/Passkeys.js";
import { Policies } from "../pages/Policies.js";
import { ErrorBox, when } from "../ui.js";

/**
 * The shell: sign-in, then the pages the signed-in key may use (hash routes, so the admin listener
 * serves one index.html). The API decides what is allowed; hiding a page only spares a refusal.
 */

interface PageDef {
  readonly id: string;
  readonly title: string;
  /** Whether this identity may use the page. */
  readonly allowed: (i: Identity) => boolean;
  readonly render: (api: Api) => ReactNode;
}

const PAGES: readonly PageDef[] = [
  { id: "overview", title: "Overview", allowed: (i) => i.operator && holds(i, "admin:stats"), render: (api) => <Overview api={api} /> },
  { id: "keys", title: "Keys", allowed: (i) => holds(i, "admin:keys"), render: (api) => <Keys api={api} /> },
  { id: "approvals", title: "Approvals", allowed: (i) => i.operator && holds(i, "admin:approvals"), render: (api) => <Approvals api={api} /> },
  { id: "anomalies", title: "Anomalies", allowed: (i) => holds(i, "admin:anomalies"), render: (api) => <Anomalies api={api} /> },
  { id: "policies", title: "Policies", allowed: (i) => holds(i, "admin:policy"), render: (api) => <Policies api={api} /> },
  { id: "audit", title: "Audit", allowed: (i) => holds(i, "admin:audit"), render: (api) => <Audit api={api} /> },
];

function currentHash(): string {
  return location.hash.replace(/^#\/?/, "");
}

/** Refresh the session this often while signed in (its lifetime is 15 min). */
const REFRESH_MS = 5 * 60_000;

export function App(): ReactNode {
  const [api, setApi] = useState<Api | null>(null);
  const [route, setRoute] = useState(currentHash());
  const [sessionError, setSessionError] = useState<ApiError | null>(null);

  useEffect(() => {
    const onHash = (): void => {
      setRoute(currentHash());
    };
    window.addEventListener("hashchange", onHash);
    return () => {
      window.removeEventListener("hashchange", onHash);
    };
  }, []);

  useEffect(() => {
    if (api === null) return;
    const timer = setInterval(() => {
      api.refresh().then(
        () => {
          setSessionError(null);
        },
        (err: unknown) => {
          setSessionError(asApiError(err));
        },
      );
    }, REFRESH_MS);
    return () => {
      clearInterval(timer);
    };
  }, [api]);

  if (api === null) return <SignIn onSignedIn={setApi} />;

  const pages = PAGES.filter((p) => p.allowed(api.identity));
  // The signed-in user's own passkeys: a page of every user, reached from the header, not the nav.
  const own = route === "passkeys";
  const page = own ? undefined : (pages.find((p) => p.id === route) ?? pages[0]);
  return (
    <div className="shell">
      <header className="top">
        <span className="brand">Portcullis</span>
        <nav aria-label="pages">
          <ul>
            {pages.map((p) => (
              <li key={p.id}>
                <a href={`#/${p.id}`} aria-current={p.id === page?.id ? "page" : undefined} data-testid={`nav-${p.id}`}>
                  {p.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span className="who" data-testid="who">
          <code>{api.identity.keyId}</code> {api.identity.operator ? "operator" : `account ${api.identity.account ?? "?"}`}
          {api.identity.passkeyId === null ? null : " (passkey)"}
        </span>
        <a href="#/passkeys" className="button" aria-current={own ? "page" : undefined} data-testid="nav-passkeys">
          Passkeys
        </a>
        <button
          type="button"
          data-testid="sign-out"
          onClick={() => {
            void api.signOut().then(() => {
              setApi(null);
            });
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <ErrorBox error={sessionError} />
        {own ? (
          <PageBoundary key="passkeys">
            <Passkeys api={api} />
          </PageBoundary>
        ) : page === undefined ? (
          <p data-testid="no-pages">This key may use none of the console&apos;s pages.</p>
        ) : (
          <PageBoundary key={page.id}>{page.render(api)}</PageBoundary>
        )}
      </main>
    </div>
  );
}

function SignIn({ onSignedIn }: { readonly onSignedIn: (api: Api) => void }): ReactNode {
  const [text, setText] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const obstacle = passkeyObstacle();

  async function withPasskey(): Promise<void> {
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await signInWithPasskey());
    } catch (err) {
      setError(asApiError(err));
    } finally {
      setBusy(false);
    }
  }

  async function signIn(): Promise<void> {
    setBusy(true);
    setError(null);
    try {
      const credential = parseCredential(text);
      const api = await Api.signIn(credential);
      // The file's text (with the private key) is dropped as soon as the session exists.
      setText("");
      onSignedIn(api);
    } catch (err) {
      setError(err instanceof Error && !("code" in err) ? asApiError(new TypeError(err.message)) : asApiError(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="signin">
      <form
        aria-labelledby="signin-title"
        data-testid="signin-form"
        onSubmit={(e) => {
          e.preventDefault();
          void signIn();
        }}
      >
        <h1 id="signin-title">Sign in to Portcullis</h1>
        <p>
          Sign in with your own key: choose or paste its credential file. The private key is imported into this browser as a non-extractable key, signs one logon
          challenge, and is not kept; the session lasts 15 minutes and is refreshed while the console is open.
        </p>
        <label>
          Credential file{" "}
          <input
            type="file"
            accept=".json,application/json"
            data-testid="signin-file"
            onChange={(e) => {
              const f = e.target.files?.[0];
              if (f !== undefined) {
                void f.text().then(setText);
              }
            }}
          />
        </label>
        <label>
          or paste it{" "}
          <textarea
            rows={6}
            value={text}
            spellCheck={false}
            autoComplete="off"
            onChange={(e) => { setText(e.target.value); }}
            placeholder='{ "keyId": "pck_…", "algorithm": "ed25519", "privateKey": "-----BEGIN PRIVATE KEY-----…" }'
            data-testid="signin-text"
          />
        </label>
        <ErrorBox error={error} />
        <button type="submit" className="primary" disabled={busy || text.trim() === ""} data-testid="signin-submit">
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <div className="or" aria-hidden="true">
          or
        </div>
        <button
          type="button"
          disabled={busy || obstacle !== null}
          onClick={() => {
            void withPasskey();
          }}
          data-testid="signin-passkey"
        >
          Sign in with a passkey
        </button>
        {obstacle === null ? (
          <p className="muted">A passkey registered on this device for your key (under Passkeys, once signed in) signs in without the file.</p>
        ) : (
          <p className="notice" data-testid="passkey-obstacle">
            {obstacle.reason}{" "}
            {obstacle.localUrl === null ? null : (
              <a href={obstacle.localUrl} data-testid="passkey-local-url">
                {obstacle.localUrl}
              </a>
            )}
          </p>
        )}
      </form>
    </main>
  );
}

/**
 * A page that throws while rendering (an answer of an unexpected shape) shows the error with a
 * code instead of blanking the whole console; the other pages stay usable.
 */
class PageBoundary extends Component<{ readonly children: ReactNode }, { readonly error: ApiError | null }> {
  override state: { readonly error: ApiError | null } = { error: null };

  static getDerivedStateFromError(err: unknown): { error: ApiError } {
    return { error: new ApiError(0, "CONSOLE_RENDER_ERROR", err instanceof Error ? err.message : String(err)) };
  }

  override componentDidCatch(err: Error, info: ErrorInfo): void {
    console.error(err, info.componentStack);
  }

  override render(): ReactNode {
    return this.state.error === null ? this.props.children : <ErrorBox error={this.state.error} />;
  }
}

export { when };
