/**
 * The custody tests' leak check: every secret a test creates (PINs, KEKs, HMAC secrets,
 * passphrases) is recorded, so is every error message, CLI output and log line the tests see, and
 * a last test per file asserts that no recorded text contains any recorded secret, in any of the
 * encodings it could be printed in.
 */
import { expect, it } from "vitest";

const secrets = new Set<string>();
const texts: string[] = [];

/** Records secrets; a Buffer is recorded as base64, base64url and hex too. */
export function recordSecrets(...values: (string | Buffer)[]): void {
  for (const v of values) {
    if (typeof v === "string") {
      if (v.length >= 6) secrets.add(v);
    } else {
      for (const enc of ["base64", "base64url", "hex"] as const) secrets.add(v.toString(enc));
    }
  }
}

/** Records text the tests saw: an error message, a CLI's output, log lines. */
export function recordText(...values: string[]): void {
  texts.push(...values);
}

/** Records an error's message and stack. */
export function recordError(err: unknown): void {
  if (err instanceof Error) texts.push(err.message, err.stack ?? "", String(err));
  else texts.push(String(err));
}

/** The file's last test. */
export function itLeaksNoSecret(): void {
  it("leaves no secret it created in any error, output or log line it saw", () => {
    expect(secrets.size).toBeGreaterThan(0);
    expect(texts.length).toBeGreaterThan(0);
    const leaks: string[] = [];
    for (const text of texts) {
      for (const secret of secrets) if (text.includes(secret)) leaks.push(`${secret.slice(0, 4)}… in ${JSON.stringify(text.slice(0, 120))}`);
    }
    expect(leaks).toEqual([]);
  });
}
