/**
 * Test harness for the demo exchange: a fresh exchange on a fixed clock, and requests injected
 * with light-my-request, signed with gateway identity headers by IdentitySigner.
 */
import inject from "light-my-request";
import { createDemoExchange, type DemoExchange } from "../src/exchange/index.js";
import { IdentitySigner, type PortcullisIdentity } from "portcullis";

export const SECRET = "demo-exchange-test-secret-0123456789abcdef";
export const T0 = 1_700_000_000_000;
export const ALL_SCOPES = "read,trade,withdraw";

export interface Reply {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, unknown>;
  /** The body parsed as JSON, typed as the shape the test expects (an unchecked cast). */
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the expected shape
  json<T = Record<string, unknown>>(): T;
}

export interface Call {
  readonly method?: string;
  readonly url: string;
  /** Sign identity headers for this account; omit for an anonymous request. */
  readonly account?: string;
  readonly scopes?: string;
  /** Identity timestamp (default: the exchange's clock). */
  readonly timestamp?: number;
  /** Sign with this secret instead of the exchange's. */
  readonly secret?: string;
  /** Sign for this method/url/body instead of the request's own. */
  readonly signedMethod?: string;
  readonly signedUrl?: string;
  readonly signedBody?: string;
  /** Form fields (sent url-encoded), or a raw body. */
  readonly form?: Record<string, string>;
  readonly json?: unknown;
  readonly body?: string | Buffer;
  readonly contentType?: string;
  readonly headers?: Record<string, string>;
}

export interface ErrorBody {
  code: number;
  msg: string;
}

export interface BalanceRow {
  asset: string;
  free: string;
  locked: string;
}

export interface FillBody {
  price: string;
  qty: string;
  commission: string;
  commissionAsset: string;
  tradeId: number;
}

export interface OrderBody {
  symbol: string;
  orderId: number;
  orderListId: number;
  clientOrderId: string;
  origClientOrderId?: string;
  transactTime?: number;
  price: string;
  origQty: string;
  executedQty: string;
  origQuoteOrderQty: string;
  cummulativeQuoteQty: string;
  status: string;
  timeInForce: string;
  type: string;
  side: string;
  fills?: FillBody[];
}

export interface DepthBody {
  lastUpdateId: number;
  bids: [string, string][];
  asks: [string, string][];
}

export class Harness {
  readonly exchange: DemoExchange;
  time = T0;
  private requestSeq = 0;

  constructor() {
    this.exchange = createDemoExchange({ identitySecret: SECRET, now: () => this.time });
  }

  identityHeaders(method: string, url: string, account: string, options: Partial<Call> = {}, body: string | Buffer = ""): Record<string, string> {
    const identity: PortcullisIdentity = {
      requestId: `req-${++this.requestSeq}`,
      keyId: `pk_test_${account}`,
      account,
      subAccount: null,
      scopes: (options.scopes ?? ALL_SCOPES).split(","),
      clientIp: "127.0.0.1",
      timestamp: options.timestamp ?? this.time,
    };
    const headers: Record<string, string> = {};
    const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
    new IdentitySigner(options.secret ?? SECRET).write(headers, method, url, bytes, identity, options.scopes ?? ALL_SCOPES);
    return headers;
  }

  async call(c: Call): Promise<Reply> {
    const method = c.method ?? "GET";
    const headers: Record<string, string> = { ...c.headers };
    let payload: string | Buffer | undefined;
    if (c.form !== undefined) {
      payload = new URLSearchParams(c.form).toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    } else if (c.json !== undefined) {
      payload = JSON.stringify(c.json);
      headers["content-type"] = "application/json";
    } else if (c.body !== undefined) {
      payload = c.body;
    }
    if (c.contentType !== undefined) headers["content-type"] = c.contentType;
    if (c.account !== undefined) {
      Object.assign(headers, this.identityHeaders(c.signedMethod ?? method, c.signedUrl ?? c.url, c.account, c, c.signedBody ?? payload ?? ""));
    }
    const res = await inject(this.exchange.handler, {
      method,
      url: c.url,
      headers,
      ...(payload === undefined ? {} : { payload }),
    });
    return {
      status: res.statusCode,
      body: res.body,
      headers: res.headers,
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- see Reply.json
      json: <T>() => JSON.parse(res.body) as T,
    };
  }

  get(url: string, account?: string): Promise<Reply> {
    return this.call(account === undefined ? { url } : { url, account });
  }

  /** POST /api/v3/order with form fields. */
  order(account: string, form: Record<string, string>): Promise<Reply> {
    return this.call({ method: "POST", url: "/api/v3/order", account, form });
  }

  /** POST /api/v3/order that must succeed; returns the order. */
  async placed(account: string, form: Record<string, string>): Promise<OrderBody> {
    const reply = await this.order(account, form);
    if (reply.status !== 200) throw new Error(`order failed: ${reply.status} ${reply.body}`);
    return reply.json<OrderBody>();
  }

  cancel(account: string, query: string): Promise<Reply> {
    return this.call({ method: "DELETE", url: `/api/v3/order?${query}`, account });
  }

  /** The account's balances via GET /api/v3/account, as {asset: [free, locked]}. */
  async balances(account: string): Promise<Record<string, [string, string]>> {
    const reply = await this.get("/api/v3/account", account);
    if (reply.status !== 200) throw new Error(`account failed: ${reply.status} ${reply.body}`);
    const out: Record<string, [string, string]> = {};
    for (const b of reply.json<{ balances: BalanceRow[] }>().balances) out[b.asset] = [b.free, b.locked];
    return out;
  }

  async depth(symbol: string, limit?: number): Promise<DepthBody> {
    const reply = await this.get(`/api/v3/depth?symbol=${symbol}${limit === undefined ? "" : `&limit=${limit}`}`);
    return reply.json<DepthBody>();
  }
}

/** Expects a Binance error reply. */
export function errorOf(reply: Reply): ErrorBody & { status: number } {
  return { status: reply.status, ...reply.json<ErrorBody>() };
}
