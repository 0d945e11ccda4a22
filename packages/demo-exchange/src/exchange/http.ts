/**
 * HTTP plumbing for the demo exchange: reading a capped request body, decoding it into parameters
 * (application/x-www-form-urlencoded or a JSON object), and writing JSON responses. A body that
 * is too large is 413; one that cannot be decoded is 400; neither ever reaches the endpoints.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { errors, type ExchangeError } from "./errors.js";
import type { ParamSource } from "./params.js";

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** The client went away (or the stream failed) before the body was read; there is no one to answer. */
export class RequestAbortedError extends Error {
  override name = "RequestAbortedError";
}

/** Reads the whole body, refusing (413) anything over `limit` bytes, declared or actual. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = req.headers["content-length"];
    if (declared !== undefined && /^[0-9]+$/.test(declared) && Number(declared) > limit) {
      reject(errors.bodyTooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (error: Error | null): void => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onAborted);
      if (error === null) resolve(Buffer.concat(chunks, size));
      else reject(error);
    };
    const onData = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
      size += bytes.length;
      if (size > limit) {
        settle(errors.bodyTooLarge(limit));
        return;
      }
      chunks.push(bytes);
    };
    const onEnd = (): void => {
      settle(null);
    };
    const onError = (): void => {
      settle(new RequestAbortedError("request stream failed"));
    };
    const onAborted = (): void => {
      settle(new RequestAbortedError("request aborted"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
  });
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A JSON value as parameter text: strings as they are, numbers and booleans as text, null as empty. */
function jsonParam(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value === null) return "";
  return JSON.stringify(value);
}

/** Decodes a request body into parameters according to its Content-Type. */
export function parseBody(contentType: string | undefined, body: Buffer): ParamSource {
  if (body.length === 0) return [];
  const mediaType = (contentType ?? "application/x-www-form-urlencoded").split(";")[0]?.trim().toLowerCase() ?? "";
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw mediaType === "application/json" ? errors.invalidJson() : errors.illegalBody();
  }
  if (mediaType === "application/x-www-form-urlencoded") return parseForm(text);
  if (mediaType === "application/json") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw errors.invalidJson();
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw errors.invalidJson();
    return Object.entries(parsed).map(([name, value]): [string, string] => [name, jsonParam(value)]);
  }
  throw errors.unsupportedMediaType();
}

/** Decodes application/x-www-form-urlencoded text (also used for the query string). */
export function parseForm(text: string): ParamSource {
  return [...new URLSearchParams(text)];
}

/** Writes a JSON response (unless one was already started). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json;charset=UTF-8",
    "content-length": String(Buffer.byteLength(text)),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

/** Writes an ExchangeError in Binance's `{code, msg}` shape. */
export function sendError(res: ServerResponse, error: ExchangeError, headers: Record<string, string> = {}): void {
  sendJson(res, error.status, error.toJSON(), headers);
}
