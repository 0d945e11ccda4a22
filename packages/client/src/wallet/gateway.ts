/**
 * The gateway's wallet endpoints, for a bot or a browser: log an owner on with a signed wallet
 * message (answering the same session client a key's logon does), register an agent from its
 * signed chain, revoke one. None of these requests carries an API key: the signature in the body
 * is the credential.
 */
import { type ClientOnlyOptions, createSessionClient, type SessionAnswer, type SessionClient } from "../client.js";
import { apiError } from "../errors.js";
import { utf8 } from "../encoding.js";

export const WALLET_SESSION_PATH = "/portcullis/v1/wallet/session";
export const AGENTS_PATH = "/portcullis/v1/agents";
export const AGENTS_REVOKE_PATH = "/portcullis/v1/agents/revoke";

/** The gateway and how to reach it (as for `createClient`). */
export type GatewayOptions = Pick<ClientOnlyOptions, "baseUrl" | "fetch">;

async function post(options: GatewayOptions, path: string, body: unknown): Promise<unknown> {
  const base = String(options.baseUrl).replace(/\/+$/, "");
  const doFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
  const response = await doFetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: utf8(JSON.stringify(body)) });
  const text = await response.text();
  if (!response.ok) throw apiError(response, text);
  return JSON.parse(text) as unknown;
}

/**
 * Logs a wallet owner on: `body` is what `signSiweLogon` or `signWalletLogon` made. Answers a
 * session client (every request HMAC-signed with the session, refreshed by itself until the
 * session's maximum lifetime; then sign a new logon). Throws `PortcullisApiError` on a refusal.
 */
export async function walletLogon(options: GatewayOptions & Omit<ClientOnlyOptions, "baseUrl" | "fetch">, body: unknown): Promise<SessionClient> {
  const session = (await post(options, WALLET_SESSION_PATH, body)) as SessionAnswer;
  return createSessionClient({ ...options, session });
}

/** What the gateway answers for a registered agent. */
export interface AgentRegistration {
  readonly id: string;
  readonly account: string;
  readonly scopes: readonly string[];
  readonly expiresAt: number;
  readonly parent: string | null;
  readonly ancestors: readonly string[];
  readonly [more: string]: unknown;
}

/**
 * Registers an agent from its chain (`[signAgentApproval(…), signDelegation(…)…]`): the gateway
 * checks the signatures and the narrowing, and registers every link not yet registered. The
 * agent then signs requests with its own key and the id the chain derives (`agentKeyId`,
 * `delegatedKeyId`).
 */
export async function registerAgent(options: GatewayOptions, chain: readonly unknown[]): Promise<AgentRegistration> {
  return (await post(options, AGENTS_PATH, { chain })) as AgentRegistration;
}

/** Revokes an agent and everything below it: `body` is what `signAgentRevocation` made. */
export async function revokeAgent(options: GatewayOptions, body: unknown): Promise<{ readonly revoked: readonly string[] }> {
  return (await post(options, AGENTS_REVOKE_PATH, body)) as { revoked: string[] };
}
