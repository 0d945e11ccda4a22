import { type ReactNode, useCallback, useEffect, useId, useRef, useState } from "react";
import { ApiError, asApiError } from "./api.js";

/** Small shared pieces: the error box (the API's `code` first), a confirmation dialog, loaders. */

export function ErrorBox({ error }: { readonly error: ApiError | null }): ReactNode {
  if (error === null) return null;
  return (
    <div className="error" role="alert" data-testid="error">
      <strong data-testid="error-code">{error.code}</strong> {error.message}
      {error.fields !== undefined ? <pre className="fields">{JSON.stringify(error.fields, null, 2)}</pre> : null}
    </div>
  );
}

/** A modal confirmation (the native <dialog>: focus trapping and Escape for free). */
export function Confirm(props: {
  readonly open: boolean;
  readonly title: string;
  readonly children?: ReactNode;
  readonly confirmLabel: string;
  readonly danger?: boolean;
  readonly onConfirm: () => void;
  readonly onCancel: () => void;
}): ReactNode {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (dialog === null) return;
    if (props.open && !dialog.open) dialog.showModal();
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  return (
    <dialog ref={ref} aria-labelledby={titleId} data-testid="confirm-dialog" onCancel={props.onCancel}>
      <h2 id={titleId}>{props.title}</h2>
      {props.children}
      <div className="actions">
        <button type="button" onClick={props.onCancel} data-testid="confirm-cancel">
          Cancel
        </button>
        <button type="button" className={props.danger === true ? "danger" : "primary"} onClick={props.onConfirm} data-testid="confirm-ok">
          {props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

export interface Loaded<T> {
  readonly data: T | null;
  readonly error: ApiError | null;
  readonly loading: boolean;
  reload(): void;
}

/** Runs `load` when its dependencies change (and on reload); a stale answer is dropped. */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load().then(
      (value) => {
        if (!live) return;
        setData(value);
        setError(null);
        setLoading(false);
      },
      (err: unknown) => {
        if (!live) return;
        setError(asApiError(err));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the caller lists what `load` reads
  }, [...deps, tick]);
  const reload = useCallback(() => {
    setTick((t) => t + 1);
  }, []);
  return { data, error, loading, reload };
}

/** Runs one action at a time with its error; `run` resolves to the value or undefined on failure. */
export function useAction(): { busy: boolean; error: ApiError | null; clear(): void; run<T>(fn: () => Promise<T>): Promise<T | undefined> } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const run = useCallback(async <T,>(fn: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (err) {
      setError(asApiError(err));
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  const clear = useCallback(() => {
    setError(null);
  }, []);
  return { busy, error, clear, run };
}

export function when(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function ago(ms: number | null | undefined, now: number = Date.now()): string {
  if (ms === null || ms === undefined) return "never";
  const s = Math.round((now - ms) / 1000);
  if (s < 60) return `${String(Math.max(0, s))} s ago`;
  if (s < 3600) return `${String(Math.round(s / 60))} min ago`;
  if (s < 86_400) return `${String(Math.round(s / 3600))} h ago`;
  return `${String(Math.round(s / 86_400))} d ago`;
}

export function Json({ value, testid }: { readonly value: unknown; readonly testid?: string }): ReactNode {
  return (
    <pre className="json" data-testid={testid}>
      {JSON.stringify(value, null, 2)}
    </pre>
  );
}

export function Copy({ text, label = "Copy" }: { readonly text: string; readonly label?: string }): ReactNode {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      data-testid="copy"
      onClick={() => {
        navigator.clipboard.writeText(text).then(
          () => {
            setDone(true);
          },
          () => {
            setDone(false);
          },
        );
      }}
    >
      {done ? "Copied" : label}
    </button>
  );
}

export { ApiError };
