import { createSiweMessage, parseSiweMessage } from "viem/siwe";
import { type Denial, deny } from "../errors/catalogue.js";
import { recoverPersonalSigner, recoverTypedSigner } from "./recovery.js";
import { logonTypedData } from "./typed-data.js";

/**
 * Wallet logon (docs/wallets.md): an owner proves control of its wallet with an EIP-4361 (SIWE)
 * message or an EIP-712 `Logon`, and gets a session of its owner key. This module checks the
 * message and recovers its signer; the gateway's wallet endpoint claims the nonce, finds the owner
 * key and issues the session. Every refusal is a Denial with its code; nothing here throws for
 * bad input.
 */

/** What every wallet message is checked against (config `wallets`). */
export interface WalletDomain {
  readonly chainId: number;
  /** The venue's host (SIWE's domain, the messages' `domain`). */
  readonly domain: string;
  /** The API origin (SIWE's URI, the messages' `uri`). */
  readonly uri: string;
}

/** The longest a logon message may be valid: 10 minutes from its issuedAt. */
export const MAX_LOGON_VALIDITY_MS = 10 * 60_000;
/** How far ahead of the gateway's clock a wallet's may run (issuedAt in the future). */
export const WALLET_CLOCK_SKEW_MS = 60_000;

/** A nonce as every wallet message carries it: 8 to 64 letters and digits. */
export const WALLET_NONCE_RE = /^[A-Za-z0-9]{8,64}$/;

/** A logon checked: who signed it, its single-use nonce and its validity (epoch ms). */
export interface VerifiedLogon {
  /** The signer's EIP-55 address. */
  readonly address: string;
  readonly nonce: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** The account the message names (EIP-712 Logon), or null (SIWE names none). */
  readonly account: string | null;
}

/**
 * The validity window's checks, the same for every wallet message: issued not after now (plus
 * the skew), expiring after now, and (a logon: `maxValidityMs`) not valid for longer than that.
 */
export function validityDenial(issuedAt: number, expiresAt: number, now: number, maxValidityMs: number | null): Denial | undefined {
  if (!Number.isSafeInteger(issuedAt) || !Number.isSafeInteger(expiresAt) || expiresAt <= issuedAt) return deny("WALLET_MESSAGE_MALFORMED", "expiresAt must come after issuedAt");
  if (issuedAt > now + WALLET_CLOCK_SKEW_MS) return deny("WALLET_EXPIRED", "issued in the future");
  if (expiresAt <= now) return deny("WALLET_EXPIRED", "expired");
  if (maxValidityMs !== null && expiresAt - issuedAt > maxValidityMs) return deny("WALLET_EXPIRED", `valid for longer than ${maxValidityMs / 1000} s`);
  return undefined;
}

/**
 * Checks a SIWE logon (EIP-4361) strictly: viem's parser, then every field a logon needs
 * (domain, address, uri, version 1, chain id, nonce, issued at, expiration time; the statement
 * optional), then the text re-created from the fields must be byte-identical to the one signed
 * (no field the parser skipped, no second spelling of a time), then the venue's domain, uri and
 * chain, the validity window, and the EIP-191 signature by the message's address.
 */
export async function verifySiweLogon(text: unknown, signature: unknown, wallets: WalletDomain, now: number): Promise<VerifiedLogon | Denial> {
  if (typeof text !== "string" || text.length === 0 || text.length > 4096) return deny("WALLET_MESSAGE_MALFORMED", "siwe must be the EIP-4361 text (at most 4 KiB)");
  let fields: ReturnType<typeof parseSiweMessage>;
  try {
    fields = parseSiweMessage(text);
  } catch {
    return deny("WALLET_MESSAGE_MALFORMED", "not an EIP-4361 message");
  }
  const { domain, address, uri, version, chainId, nonce, issuedAt, expirationTime, notBefore } = fields;
  if (domain === undefined || address === undefined || uri === undefined || version !== "1" || chainId === undefined || nonce === undefined || issuedAt === undefined || expirationTime === undefined) {
    return deny("WALLET_MESSAGE_MALFORMED", "a logon needs domain, address, URI, Version 1, Chain ID, Nonce, Issued At and Expiration Time");
  }
  if (!WALLET_NONCE_RE.test(nonce)) return deny("WALLET_MESSAGE_MALFORMED", "the nonce must be 8 to 64 letters and digits");
  let recreated: string;
  try {
    recreated = createSiweMessage({ ...fields, domain, address, uri, version, chainId, nonce, issuedAt, expirationTime });
  } catch {
    return deny("WALLET_MESSAGE_MALFORMED", "a field of the message is not valid EIP-4361");
  }
  if (recreated !== text) return deny("WALLET_MESSAGE_MALFORMED", "the message is not in the one EIP-4361 form (re-created text differs)");
  if (chainId !== wallets.chainId) return deny("WALLET_CHAIN_MISMATCH", `chain ${chainId}`);
  if (domain !== wallets.domain) return deny("WALLET_DOMAIN_MISMATCH", domain);
  if (uri !== wallets.uri) return deny("WALLET_URI_MISMATCH", uri);
  if (notBefore !== undefined && notBefore.getTime() > now) return deny("WALLET_EXPIRED", "not valid yet (Not Before)");
  const window = validityDenial(issuedAt.getTime(), expirationTime.getTime(), now, MAX_LOGON_VALIDITY_MS);
  if (window !== undefined) return window;
  const signer = await recoverPersonalSigner(text, signature);
  if (signer === null || signer.toLowerCase() !== address.toLowerCase()) return deny("WALLET_SIGNATURE_INVALID", signer === null ? "not a signature" : "signed by another address");
  return { address: signer, nonce, issuedAt: issuedAt.getTime(), expiresAt: expirationTime.getTime(), account: null };
}

const LOGON_MESSAGE_FIELDS: ReadonlySet<string> = new Set(["domain", "uri", "account", "nonce", "issuedAt", "expiresAt"]);
const LOGON_DOMAIN_FIELDS: ReadonlySet<string> = new Set(["name", "version", "chainId"]);

/** A uint64 as JSON carries it: a non-negative safe integer, or its decimal string. */
export function uint64Field(v: unknown): number | null {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === "string" && /^(0|[1-9][0-9]{0,15})$/.test(v) && Number.isSafeInteger(Number(v))) return Number(v);
  return null;
}

function plainObject(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/**
 * Checks an EIP-712 `Logon` (`{ message, domain? }`): every field present and typed, the venue's
 * domain, uri and (when the caller shows its EIP-712 domain) chain id, the validity window (at
 * most 10 minutes), then recovers the signer over the typed data built with the gateway's own
 * domain `{ name: "Portcullis", version: "1", chainId }` (a signature for another chain recovers
 * another address, which owns nothing here).
 */
export async function verifyTypedLogon(typedData: unknown, signature: unknown, wallets: WalletDomain, now: number): Promise<VerifiedLogon | Denial> {
  const outer = plainObject(typedData);
  const message = plainObject(outer?.message);
  if (outer === null || message === null) return deny("WALLET_MESSAGE_MALFORMED", "typedData must be { message: Logon }");
  for (const name of Object.keys(outer)) {
    if (name !== "message" && name !== "domain" && name !== "types" && name !== "primaryType") return deny("WALLET_MESSAGE_MALFORMED", `typedData.${name} is not a member`);
  }
  if (outer.primaryType !== undefined && outer.primaryType !== "Logon") return deny("WALLET_MESSAGE_MALFORMED", "primaryType must be Logon");
  for (const name of Object.keys(message)) if (!LOGON_MESSAGE_FIELDS.has(name)) return deny("WALLET_MESSAGE_MALFORMED", `message.${name} is not a member of Logon`);
  const { domain, uri, account, nonce } = message;
  const issuedAt = uint64Field(message.issuedAt);
  const expiresAt = uint64Field(message.expiresAt);
  if (typeof domain !== "string" || typeof uri !== "string" || typeof account !== "string" || typeof nonce !== "string" || issuedAt === null || expiresAt === null) {
    return deny("WALLET_MESSAGE_MALFORMED", "Logon needs domain, uri, account, nonce (strings), issuedAt and expiresAt (epoch seconds)");
  }
  if (!WALLET_NONCE_RE.test(nonce)) return deny("WALLET_MESSAGE_MALFORMED", "the nonce must be 8 to 64 letters and digits");
  if (!/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/.test(account)) return deny("WALLET_MESSAGE_MALFORMED", "account is not an account name");
  const shown = outer.domain === undefined ? null : plainObject(outer.domain);
  if (outer.domain !== undefined) {
    if (shown === null || Object.keys(shown).some((k) => !LOGON_DOMAIN_FIELDS.has(k))) return deny("WALLET_MESSAGE_MALFORMED", "typedData.domain is { name, version, chainId }");
    if (shown.chainId !== undefined && uint64Field(shown.chainId) !== wallets.chainId) return deny("WALLET_CHAIN_MISMATCH", `chain ${String(shown.chainId)}`);
  }
  if (domain !== wallets.domain) return deny("WALLET_DOMAIN_MISMATCH", domain);
  if (uri !== wallets.uri) return deny("WALLET_URI_MISMATCH", uri);
  const window = validityDenial(issuedAt * 1000, expiresAt * 1000, now, MAX_LOGON_VALIDITY_MS);
  if (window !== undefined) return window;
  const signer = await recoverTypedSigner(logonTypedData(wallets.chainId, { domain, uri, account, nonce, issuedAt: BigInt(issuedAt), expiresAt: BigInt(expiresAt) }), signature);
  if (signer === null) return deny("WALLET_SIGNATURE_INVALID", "not a signature");
  return { address: signer, nonce, issuedAt: issuedAt * 1000, expiresAt: expiresAt * 1000, account };
}
