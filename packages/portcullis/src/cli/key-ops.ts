import { PortcullisApiError, createClient } from "@portcullis/client/base";
import { checkpointer } from "../audit/index.js";
import { userInfo } from "node:os";
import { OperatorError, PortcullisError, isErrorCode } from "../errors/catalogue.js";
import { valueOrThrow } from "../errors/result.js";
import { parseCreateKeyInput, parseRotateKeyInput, parseUpdateKeyInput } from "../keys/input.js";
import type { KeyStatus, KeyView } from "../contract/keys.js";
import { KeyService } from "../keys/service.js";
import { openDataDir } from "../core/data-dir.js";
import { unreachableReason } from "./errors.js";

/**
 * Key operations for the CLI, either directly on a data directory (the same key service the
 * admin API uses, and the change reaches a running gateway through the change feed) or through a
 * running admin API over HTTP, signed with an admin key.
 */
export interface KeyOps {
  create(raw: Record<string, unknown>): Promise<KeyView & { secret?: string }>;
  list(query: { account?: string; status?: KeyStatus; search?: string; limit?: number }): Promise<KeyView[]>;
  show(id: string): Promise<KeyView>;
  revoke(id: string, reason: string | null): Promise<KeyView>;
  suspend(id: string, reason: string | null): Promise<KeyView>;
  resume(id: string): Promise<KeyView>;
  setLimits(id: string, limits: Record<string, number>): Promise<KeyView>;
  update(id: string, raw: Record<string, unknown>): Promise<KeyView>;
  /** The successor (with its secret for HMAC keys) and, as `predecessor`, the old key. */
  rotate(id: string, raw: Record<string, unknown>): Promise<KeyView & { secret?: string; predecessor: KeyView }>;
  endSessions(id: string, reason: string | null): Promise<KeyView>;
  close(): Promise<void>;
}

export function cliActor(): string {
  let name = "unknown";
  try {
    name = userInfo().username;
  } catch {
    // No user database entry (some containers): keep "unknown".
  }
  return `cli:${name}`;
}

export async function localKeyOps(dataDir: string): Promise<KeyOps> {
  const data = await openDataDir(dataDir);
  const audit = checkpointer(data);
  const service = new KeyService({ store: data.store, envelope: data.envelope, environment: data.environment });
  const actor = cliActor();
  return {
    async create(raw) {
      const created = await service.create(valueOrThrow(parseCreateKeyInput(raw, Date.now())), actor);
      return created.secret === null ? created.key : { ...created.key, secret: created.secret };
    },
    list: (query) => service.list(query),
    show: (id) => service.get(id),
    revoke: (id, reason) => service.revoke(id, actor, reason),
    suspend: (id, reason) => service.suspend(id, actor, reason),
    resume: (id) => service.resume(id, actor),
    setLimits: (id, limits) => service.setLimits(id, limits, actor),
    update: (id, raw) => service.update(id, valueOrThrow(parseUpdateKeyInput(raw)), actor),
    async rotate(id, raw) {
      const rotated = await service.rotate(id, valueOrThrow(parseRotateKeyInput(raw)), actor);
      const successor = rotated.secret === null ? rotated.key : { ...rotated.key, secret: rotated.secret };
      return { ...successor, predecessor: rotated.predecessor };
    },
    endSessions: (id, reason) => service.endSessions(id, actor, reason),
    close: async () => {
      await audit.close();
      await data.close();
    },
  };
}

export function fromApiError(adminUrl: string, err: unknown): never {
  if (err instanceof PortcullisApiError && isErrorCode(err.code)) throw new PortcullisError(err.code, err.message);
  const reason = unreachableReason(err);
  if (reason !== null) {
    throw new OperatorError("ADMIN_UNREACHABLE", `cannot reach the admin API at ${adminUrl} (${reason}); is the gateway running, and is that its admin address (--admin URL)?`, { cause: err });
  }
  throw err;
}

export interface AdminCredentials {
  readonly keyId: string;
  readonly secret: string;
}

export function remoteKeyOps(adminUrl: string, credentials: AdminCredentials): KeyOps {
  const client = createClient({ baseUrl: adminUrl, keyId: credentials.keyId, secret: credentials.secret });
  const call = <T>(method: string, path: string, json?: unknown): Promise<T> =>
    client.json<T>(method, path, json === undefined ? {} : { json }).catch((err: unknown) => fromApiError(adminUrl, err));
  const id = (keyId: string): string => encodeURIComponent(keyId);
  return {
    create: (raw) => call("POST", "/portcullis/v1/keys", raw),
    async list(query) {
      const params = new URLSearchParams();
      if (query.account !== undefined) params.set("account", query.account);
      if (query.status !== undefined) params.set("status", query.status);
      if (query.search !== undefined) params.set("q", query.search);
      if (query.limit !== undefined) params.set("limit", String(query.limit));
      const qs = params.toString();
      const answer = await call<{ keys: KeyView[] }>("GET", `/portcullis/v1/keys${qs === "" ? "" : `?${qs}`}`);
      return answer.keys;
    },
    show: (keyId) => call("GET", `/portcullis/v1/keys/${id(keyId)}`),
    revoke: (keyId, reason) => call("POST", `/portcullis/v1/keys/${id(keyId)}/revoke`, reason === null ? {} : { reason }),
    suspend: (keyId, reason) => call("POST", `/portcullis/v1/keys/${id(keyId)}/suspend`, reason === null ? {} : { reason }),
    resume: (keyId) => call("POST", `/portcullis/v1/keys/${id(keyId)}/resume`, {}),
    setLimits: (keyId, limits) => call("PUT", `/portcullis/v1/keys/${id(keyId)}/limits`, { limits }),
    update: (keyId, raw) => call("PATCH", `/portcullis/v1/keys/${id(keyId)}`, raw),
    rotate: (keyId, raw) => call("POST", `/portcullis/v1/keys/${id(keyId)}/rotate`, raw),
    endSessions: (keyId, reason) => call("POST", `/portcullis/v1/keys/${id(keyId)}/end-sessions`, reason === null ? {} : { reason }),
    close: () => Promise.resolve(),
  };
}
