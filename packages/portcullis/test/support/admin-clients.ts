/**
 * Helpers of the admin API's authorization tests (test/admin/account-admin.test.ts,
 * test/admin/cross-account.test.ts): clients signed by a created key, the refusal a call ends in,
 * and every key route with a body it would otherwise accept.
 */
import { PortcullisApiError, createClient, type PortcullisClient } from "@portcullis/client";
import { expect } from "vitest";

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** A client of the admin API at `base` signing with a key `createKey` made (HMAC: its secret). */
export const clientOf = (base: string, created: { key: { id: string }; secret: string | null }): PortcullisClient =>
  createClient({ baseUrl: base, keyId: created.key.id, secret: created.secret ?? "" });

/** The refusal a call ends in (it must end in one): status, code and public message. */
export async function refusal(p: Promise<unknown>): Promise<{ status: number; code: string; message: string }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortcullisApiError);
  const e = err as PortcullisApiError;
  return { status: e.status, code: String(e.code), message: (e.body as { message: string }).message };
}

/** Every admin route that names a key (`/portcullis/v1/keys/:id` + suffix), with a body it would otherwise accept. */
export const KEY_ROUTES: readonly (readonly [Method, string, Record<string, unknown> | undefined])[] = [
  ["GET", "", undefined],
  ["POST", "/revoke", { reason: "x" }],
  ["POST", "/suspend", {}],
  ["POST", "/resume", undefined],
  ["PUT", "/limits", { limits: {} }],
  ["PATCH", "", { label: "taken over" }],
  ["POST", "/rotate", { grace: "0" }],
  ["POST", "/end-sessions", {}],
];

/** A JSON call: `json` as the body when given (an empty one otherwise). */
export const call = <T>(c: PortcullisClient, method: Method, path: string, json?: Record<string, unknown>): Promise<T> => c.json<T>(method, path, json === undefined ? {} : { json });
