import { randomBytes } from "node:crypto";
import { type AddressAdd, type ChangeHolder, type PolicySubject, newOperationId } from "../contract/policy.js";
import { isJsonObject, record } from "../contract/json.js";
import { PortcullisError } from "../errors/catalogue.js";
import { type Result, invalid, ok, valueOrThrow } from "../errors/result.js";
import type { AddressRow, DurableStore } from "../storage/types.js";
import { type ChangeOutcome, type Initiator, type PolicyService, blocked } from "./policy-service.js";

/**
 * The withdrawal address books (docs/policy.md): per account and asset, the destinations the
 * policy's `destination` conditions know. A new address is usable (known) only after a cooldown
 * (default 24 h), so a stolen admin key cannot add an address and withdraw to it at once; adding
 * one is a governed change (`address.add`, judged by the policy: allowed, blocked or held); a
 * removal is immediate and never held, since it only narrows what can happen.
 */

export const DEFAULT_ADDRESS_COOLDOWN_MS = 24 * 3_600_000;

/** An entry as the CLI and the admin API show it. */
export interface AddressView extends AddressRow {
  /** At the time of the answer: cooling down, usable (known to the policy), or removed. */
  readonly state: "cooling" | "usable" | "removed";
}

/** A new entry as given (checked by `parseAddressInput`): the governed operation's fields. */
export type AddressInput = Omit<AddressAdd, "kind">;

const ID_RE = /^[\x21-\x7e]{1,128}$/;
const ADDRESS_RE = /^[\x21-\x7e]{1,256}$/;
const ASSET_RE = /^[A-Za-z0-9._\-/:]{1,32}$/;
const NETWORK_RE = /^[A-Za-z0-9._\-/:]{1,64}$/;
const TAG_RE = /^[\x20-\x7e]{1,128}$/;
const FIELDS = new Set(["account", "asset", "address", "network", "tag", "label"]);

/** `{ "account", "asset", "address", "network"?, "tag"?, "label"? }`, strictly. */
export function parseAddressInput(raw: unknown): Result<AddressInput> {
  if (!isJsonObject(raw)) return invalid('an address is a JSON object: { "account", "asset", "address", "network"?, "tag"?, "label"? }');
  const fields = record<string>();
  for (const name of Object.keys(raw)) if (!FIELDS.has(name)) fields[name] = "unknown field";
  const text = (name: string, re: RegExp, required: boolean, what: string): string | null => {
    const v = raw[name];
    if (v === undefined || v === null) {
      if (required) fields[name] = "required";
      return null;
    }
    if (typeof v !== "string" || !re.test(v)) {
      fields[name] = what;
      return null;
    }
    return v;
  };
  const account = text("account", ID_RE, true, "an account id (printable ASCII, no spaces)");
  const asset = text("asset", ASSET_RE, true, "an asset (letters, digits and ._-/:)");
  const address = text("address", ADDRESS_RE, true, "an address (printable ASCII without spaces, at most 256)");
  const network = text("network", NETWORK_RE, false, "a network name (letters, digits and ._-/:)");
  const tag = text("tag", TAG_RE, false, "a memo / tag (printable ASCII, at most 128)");
  const label = raw.label;
  // eslint-disable-next-line no-control-regex -- control characters are what a label may not hold
  if (label !== undefined && (typeof label !== "string" || label.length > 200 || /[\u0000-\u001f\u007f]/.test(label))) fields.label = "a string of at most 200 characters, without control characters";
  if (Object.keys(fields).length > 0 || account === null || asset === null || address === null) {
    return invalid(`the address is not valid: ${Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join("; ")}`, { ...fields });
  }
  return ok({ account, asset: asset.toUpperCase(), address, network, tag, label: typeof label === "string" ? label : "" });
}

export interface AddressBookOptions {
  readonly store: DurableStore;
  /** Judges additions (`address.add`). */
  readonly policy: PolicyService;
  readonly holder?: ChangeHolder | null;
  /** How long a new address cools down before it is usable (ms). Default 24 h. */
  readonly cooldownMs?: number;
  readonly now?: () => number;
  readonly newId?: () => string;
}

interface AddressPayload extends AddressInput {
  readonly actor: string;
}

export class AddressBook {
  private readonly store: DurableStore;
  private readonly policy: PolicyService;
  private readonly holder: ChangeHolder | null;
  readonly cooldownMs: number;
  private readonly now: () => number;
  private readonly newId: () => string;

  constructor(options: AddressBookOptions) {
    const cooldown = options.cooldownMs ?? DEFAULT_ADDRESS_COOLDOWN_MS;
    if (!Number.isSafeInteger(cooldown) || cooldown < 0) throw new TypeError("cooldownMs must be a non-negative integer");
    this.store = options.store;
    this.policy = options.policy;
    this.holder = options.holder ?? null;
    this.cooldownMs = cooldown;
    this.now = options.now ?? Date.now;
    this.newId = options.newId ?? (() => `adr_${randomBytes(12).toString("hex")}`);
    this.holder?.onRelease("address.add", (payload) => this.release(payload));
  }

  view(row: AddressRow, at = this.now()): AddressView {
    return { ...row, state: row.removedAt !== null ? "removed" : row.usableFrom <= at ? "usable" : "cooling" };
  }

  /**
   * Adds an address, as the policy decides (`address.add`). `reach`: the only account the caller
   * may change (an account admin's), or null for any (an operator, the CLI on the data directory).
   */
  async add(raw: unknown, initiator: Initiator, reach: string | null): Promise<ChangeOutcome<AddressView>> {
    const input = valueOrThrow(parseAddressInput(raw));
    if (reach !== null && input.account !== reach) {
      throw new PortcullisError("ADMIN_GRANT_EXCEEDED", `an account admin key changes its own account's address book only (${reach})`);
    }
    const operation: AddressAdd = { kind: "address.add", ...input };
    const subject: PolicySubject = { operation, account: initiator.account, keyId: initiator.keyId, client: initiator.client, at: this.now() };
    const operationId = newOperationId();
    const decision = await this.policy.decide(subject, operationId);
    switch (decision.action.type) {
      case "allow":
        return { state: "applied", decision, result: await this.insert(input, initiator.actor) };
      case "block":
        throw blocked(decision, `adding ${input.address} to ${input.account}'s ${input.asset} address book`);
      case "hold": {
        if (this.holder === null) throw new PortcullisError("POLICY_HOLD_UNAVAILABLE");
        const payload: AddressPayload = { ...input, actor: initiator.actor };
        return { state: "held", decision, ticket: await this.holder.holdChange(operationId, subject, decision, payload, initiator.owner) };
      }
    }
  }

  private async insert(input: AddressInput, actor: string): Promise<AddressView> {
    const at = this.now();
    const row: AddressRow = { id: this.newId(), ...input, addedAt: at, addedBy: actor, usableFrom: at + this.cooldownMs, removedAt: null, removedBy: null };
    const result = await this.store.addresses.add(row);
    if (!result.ok) throw new PortcullisError("ADDRESS_EXISTS", `the address book already holds it as ${result.existing.id}`);
    return this.view(row, at);
  }

  /** A held addition, released: the address is added now, and cools down from now. */
  private release(payload: unknown): Promise<AddressView> {
    if (!isJsonObject(payload) || typeof payload.actor !== "string") return Promise.reject(new PortcullisError("VALIDATION_FAILED", "a held address addition without its entry"));
    const { actor, ...rest } = payload;
    return this.insert(valueOrThrow(parseAddressInput(rest)), actor);
  }

  async list(filter: { account?: string; asset?: string; removed?: boolean; limit?: number }, reach: string | null): Promise<AddressView[]> {
    if (reach !== null && filter.account !== undefined && filter.account !== reach) return [];
    const account = reach ?? filter.account;
    const at = this.now();
    const rows = await this.store.addresses.list({
      limit: filter.limit ?? 1000,
      ...(account === undefined ? {} : { account }),
      ...(filter.asset === undefined ? {} : { asset: filter.asset.toUpperCase() }),
      ...(filter.removed === undefined ? {} : { removed: filter.removed }),
    });
    return rows.map((r) => this.view(r, at));
  }

  /** Removes an entry at once (never held). Another account's entry is ADDRESS_NOT_FOUND, as a missing one. */
  async remove(id: string, initiator: Initiator, reach: string | null): Promise<AddressView> {
    const at = this.now();
    const removed = await this.store.addresses.remove(id, reach, initiator.actor, at);
    if (removed === undefined) throw new PortcullisError("ADDRESS_NOT_FOUND");
    return this.view(removed, at);
  }
}
