/**
 * Session tokens under random change: a token the authority issued is accepted exactly as issued,
 * and any other text — one character replaced, inserted or removed anywhere — is refused, never
 * accepted as some session (the authority's check is what stage 4 runs).
 */
import fc from "fast-check";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileKey } from "../../src/keys/cache.js";
import type { VerificationKey } from "../../src/contract/verification-key.js";
import { SessionAuthority } from "../../src/sessions/authority.js";
import { initDataDir, openDataDir } from "../../src/core/data-dir.js";
import { keyRecord } from "../support/keys.js";

let dir: string;
let authority: SessionAuthority;
let token: string;
const NOW = Date.UTC(2026, 11, 1);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-token-"));
  await initDataDir(dir, "test");
  const data = await openDataDir(dir);
  authority = await SessionAuthority.open({ meta: data.store, envelope: data.envelope, environment: "test", maxCached: 10 });
  await data.store.close();
  const key: VerificationKey = compileKey({ record: keyRecord({ scopes: ["read", "trade"] }), hmacKey: null, hmacKeyDecoded: null, publicKey: null, passphraseHash: null }, 5000);
  token = (await authority.logon(key, { bindAddress: true }, "198.51.100.7", NOW)).keyid;
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";

describe("session tokens", () => {
  it("are accepted exactly as issued", () => {
    const checked = authority.check(token, NOW + 1);
    expect("ok" in checked).toBe(false);
    if (!("ok" in checked)) expect(checked.claims).toMatchObject({ scp: ["read", "trade"], ip: "198.51.100.7", iat: NOW });
  });

  it("any one-character edit is refused", () => {
    const edit = fc.record({
      at: fc.nat({ max: token.length }),
      kind: fc.constantFrom("replace", "insert", "delete"),
      char: fc.constantFrom(...ALPHABET.split("")),
    });
    fc.assert(
      fc.property(edit, ({ at, kind, char }) => {
        const i = Math.min(at, token.length - 1);
        const changed =
          kind === "replace" ? token.slice(0, i) + char + token.slice(i + 1) : kind === "insert" ? token.slice(0, at) + char + token.slice(at) : token.slice(0, i) + token.slice(i + 1);
        fc.pre(changed !== token);
        const checked = authority.check(changed, NOW + 1);
        expect("ok" in checked, changed).toBe(true);
        // An edit of the expiry's digits that still parses may say SESSION_EXPIRED: an expired
        // token is refused before its signature is checked (no verification spent on it).
        if ("ok" in checked) expect(["SESSION_INVALID", "SESSION_EXPIRED", "KEY_ENVIRONMENT_MISMATCH"]).toContain(checked.code);
      }),
      { numRuns: 2000 },
    );
  });
});
