import { type ReactNode, useState } from "react";
import { type Api, ApiError } from "../api.js";
import { ErrorBox, Json, useAction, useLoad, when } from "../ui.js";

/** The policy in force, its versions, and a dry run that shows the evaluation trace. */

interface PolicyView {
  readonly version: number;
  readonly digest: string;
  readonly rules: number;
  readonly createdAt: number | null;
  readonly createdBy: string;
  readonly document: unknown;
}
interface Explanation {
  readonly decision: { readonly action: { readonly type: string } & Record<string, unknown>; readonly rule: string; readonly version: number };
  readonly trace: readonly { readonly rule: string; readonly matched: boolean; readonly because: readonly string[] }[];
}

const EXAMPLE = '{"kind":"withdraw","asset":"USDT","amount":"1500","address":"TQn9…","network":"TRX"}';

export function Policies({ api }: { readonly api: Api }): ReactNode {
  const [version, setVersion] = useState<number | null>(null);
  const policy = useLoad(() => api.call<PolicyView>("GET", "/portcullis/v1/policy", undefined, { version: version ?? undefined }), [api, version]);
  const versions = useLoad(() => api.call<{ versions: PolicyView[] }>("GET", "/portcullis/v1/policy/versions"), [api]);
  const [operation, setOperation] = useState(EXAMPLE);
  const [account, setAccount] = useState("");
  const [key, setKey] = useState("");
  const [source, setSource] = useState("");
  const test = useAction();
  const [result, setResult] = useState<Explanation | null>(null);

  async function dryRun(): Promise<void> {
    setResult(null);
    const out = await test.run(() => {
      let op: unknown;
      try {
        op = JSON.parse(operation);
      } catch {
        throw new ApiError(0, "VALIDATION_FAILED", "the operation must be JSON");
      }
      const body: Record<string, unknown> = { operation: op };
      if (account.trim() !== "") body.account = account.trim();
      if (key.trim() !== "") body.key = key.trim();
      if (source.trim() !== "") body.source = source.trim();
      if (version !== null) body.version = version;
      return api.call<Explanation>("POST", "/portcullis/v1/policy/test", body);
    });
    if (out !== undefined) setResult(out);
  }

  return (
    <section aria-labelledby="policies-title" data-testid="page-policies">
      <h1 id="policies-title">Policies</h1>
      <ErrorBox error={policy.error ?? versions.error} />
      <div className="grid2">
        <div>
          <h2>{version === null ? "In force" : `Version ${String(version)}`}</h2>
          {policy.data !== null ? (
            <>
              <p data-testid="policy-version">
                version <strong>{policy.data.version}</strong>, {policy.data.rules} rules, by {policy.data.createdBy} at {when(policy.data.createdAt)}
              </p>
              <p className="muted">
                digest <code>{policy.data.digest}</code>
              </p>
              <Json value={policy.data.document} testid="policy-document" />
            </>
          ) : null}
        </div>
        <div>
          <h2>Versions</h2>
          <table data-testid="policy-versions">
            <thead>
              <tr>
                <th scope="col">version</th>
                <th scope="col">rules</th>
                <th scope="col">by</th>
                <th scope="col">at</th>
              </tr>
            </thead>
            <tbody>
              {(versions.data?.versions ?? []).map((v, i) => (
                <tr key={v.version}>
                  <td>
                    <button type="button" className="link" onClick={() => { setVersion(i === 0 ? null : v.version); }}>
                      {v.version}
                      {i === 0 ? " (in force)" : ""}
                    </button>
                  </td>
                  <td>{v.rules}</td>
                  <td>{v.createdBy}</td>
                  <td>{when(v.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
      <form
        className="panel"
        aria-labelledby="dry-run-title"
        onSubmit={(e) => {
          e.preventDefault();
          void dryRun();
        }}
      >
        <h2 id="dry-run-title">Dry run</h2>
        <label>
          Operation (JSON){" "}
          <textarea rows={3} value={operation} onChange={(e) => { setOperation(e.target.value); }} data-testid="dryrun-operation" />
        </label>
        <div className="form-grid">
          <label>
            Account <input value={account} onChange={(e) => { setAccount(e.target.value); }} data-testid="dryrun-account" />
          </label>
          <label>
            Key <input value={key} onChange={(e) => { setKey(e.target.value); }} />
          </label>
          <label>
            Source address <input value={source} onChange={(e) => { setSource(e.target.value); }} placeholder="203.0.113.7" />
          </label>
        </div>
        <button type="submit" className="primary" disabled={test.busy} data-testid="dryrun-submit">
          Evaluate
        </button>
        <ErrorBox error={test.error} />
        {result !== null ? (
          <div data-testid="dryrun-result">
            <p>
              decision <strong data-testid="dryrun-decision">{result.decision.action.type}</strong> by rule <code>{result.decision.rule}</code> (version{" "}
              {result.decision.version})
            </p>
            <ol className="trace" data-testid="dryrun-trace">
              {result.trace.map((s) => (
                <li key={s.rule} className={s.matched ? "matched" : undefined}>
                  <code>{s.rule}</code> {s.matched ? "matched" : "did not match"}: {s.because.join("; ")}
                </li>
              ))}
            </ol>
          </div>
        ) : null}
      </form>
    </section>
  );
}
