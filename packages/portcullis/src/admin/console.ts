import { createHash } from "node:crypto";
import { lstatSync, readFileSync, readdirSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { brotliCompressSync, constants as zlib, gzipSync } from "node:zlib";
import { deny } from "../errors/catalogue.js";
import { sendDenial } from "../gateway/http.js";
import type { Logger } from "../log/logger.js";

/**
 * The console's static files (issue 18; docs/console-backend.md), served by the admin listener
 * under `/console/` from `packages/console/dist` (Vite, `base: "/console/"`).
 *
 * Every file is read once, when the admin API starts, into memory, with its gzip and brotli forms
 * precompressed; a request is answered from a map keyed by the exact path text the file was read
 * under. No part of a URL ever reaches the filesystem: a path that is not a key of the map is the
 * single-page app's `index.html` (a route of the app, e.g. `/console/keys`), or 404 under
 * `/console/assets/` (a missing script must not be answered with HTML), or 400 when it tries to
 * climb (dot segments, backslashes, control characters, their percent-encodings).
 *
 * The answers carry a strict Content-Security-Policy (no inline script or style, `connect-src
 * 'self'`, not framable) and the usual hardening headers. `/console/assets/*` (content-hashed by
 * Vite) is cached for a year, immutable; everything else, `index.html` first, is `no-store`, so a
 * new build is picked up at the next load.
 */

export const CONSOLE_PREFIX = "/console/";

/** The policy the contract fixes (docs/console-backend.md): the app has no inline script or style attribute. */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; " +
  "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "x-frame-options": "DENY",
};

const IMMUTABLE = "public, max-age=31536000, immutable";

/** A dist larger than this is refused at startup (a wrong directory, not a console build). */
const MAX_FILES = 2_000;
const MAX_BYTES = 64 * 1024 * 1024;
/** Smaller files are not worth compressing (the headers cost more than the saving). */
const COMPRESS_FROM = 256;

const TYPES: Readonly<Record<string, string>> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  json: "application/json",
  map: "application/json",
  webmanifest: "application/manifest+json",
  txt: "text/plain; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  ico: "image/x-icon",
  woff: "font/woff",
  woff2: "font/woff2",
};
const COMPRESSIBLE = new Set(["html", "js", "mjs", "css", "json", "map", "webmanifest", "txt", "svg", "ico"]);

/** One encoding of a file, ready to write. */
interface Variant {
  readonly body: Buffer;
  readonly etag: string;
}

interface Asset {
  readonly type: string;
  readonly cache: string;
  readonly identity: Variant;
  readonly gzip: Variant | null;
  readonly br: Variant | null;
}

/** The console as loaded at startup: its files by path (relative to `/console/`), or why there are none. */
export type ConsoleFiles =
  | { readonly ok: true; readonly files: ReadonlyMap<string, Asset>; readonly index: Asset; readonly bytes: number }
  | { readonly ok: false; readonly reason: string };

function variant(body: Buffer): Variant {
  return { body, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"` };
}

function asset(name: string, body: Buffer): Asset {
  const dot = name.lastIndexOf(".");
  const ext = dot < 0 ? "" : name.slice(dot + 1).toLowerCase();
  const identity = variant(body);
  let gzip: Variant | null = null;
  let br: Variant | null = null;
  if (COMPRESSIBLE.has(ext) && body.length >= COMPRESS_FROM) {
    const gz = gzipSync(body, { level: 9 });
    if (gz.length < body.length) gzip = variant(gz);
    // Quality 9 rather than 11: within a few per cent of it, many times faster at startup.
    const b = brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 9, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length } });
    if (b.length < body.length) br = variant(b);
  }
  return {
    type: TYPES[ext] ?? "application/octet-stream",
    cache: name.startsWith("assets/") ? IMMUTABLE : "no-store",
    identity,
    gzip,
    br,
  };
}

/**
 * Reads the built console (synchronously: once, at startup). A missing or unbuilt directory (no
 * `index.html`) is not an error of the admin API: its console paths answer CONSOLE_NOT_AVAILABLE
 * and one line says why. Only regular files and directories are read (no symbolic link is
 * followed), dot files are left out.
 */
export function loadConsole(dir: string, logger: Logger): ConsoleFiles {
  const files = new Map<string, Asset>();
  let bytes = 0;
  const walk = (abs: string, rel: string): void => {
    for (const name of readdirSync(abs).sort()) {
      if (name.startsWith(".")) continue;
      const path = join(abs, name);
      const st = lstatSync(path);
      const key = rel === "" ? name : `${rel}/${name}`;
      if (st.isDirectory()) walk(path, key);
      else if (st.isFile()) {
        if (files.size >= MAX_FILES) throw new RangeError(`more than ${MAX_FILES} files`);
        bytes += st.size;
        if (bytes > MAX_BYTES) throw new RangeError(`more than ${MAX_BYTES} bytes`);
        files.set(key, asset(key, readFileSync(path)));
      }
    }
  };
  let result: ConsoleFiles;
  try {
    walk(dir, "");
    const index = files.get("index.html");
    result = index === undefined ? { ok: false, reason: "no index.html (the console is not built: npm run build -w @portcullis/console)" } : { ok: true, files, index, bytes };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    result = { ok: false, reason: code === "ENOENT" ? "the directory does not exist (the console is not built: npm run build -w @portcullis/console)" : (err as Error).message };
  }
  if (result.ok) logger.info({ dir, files: result.files.size, bytes: result.bytes }, "console: serving its files under /console/");
  // Info, not a warning: an admin API without its console is a supported way to run.
  else logger.info({ dir, reason: result.reason }, "console not available: its paths answer CONSOLE_NOT_AVAILABLE; the admin API works");
  return result;
}

/** A path (after `/console/`) that tries to climb or hide: dot segments, backslashes, NUL and other controls, or their encodings. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what it refuses
const CLIMBING = /(?:^|\/)\.\.?(?:\/|$)|\\|[\u0000-\u001f\u007f]|%(?:2e|2f|5c|00)/i;

/** The encoding to answer with, from Accept-Encoding: brotli, then gzip, else none (a q=0 token is refused). */
function pick(header: string | string[] | undefined, file: Asset): Variant {
  if (typeof header !== "string" || (file.br === null && file.gzip === null)) return file.identity;
  let br = false;
  let gzip = false;
  for (const part of header.split(",")) {
    const [token = "", ...params] = part.split(";");
    const name = token.trim().toLowerCase();
    const refused = params.some((p) => /^\s*q\s*=\s*0(?:\.0{0,3})?\s*$/i.test(p));
    if (refused) continue;
    if (name === "br") br = true;
    else if (name === "gzip" || name === "*") gzip = true;
  }
  if (br && file.br !== null) return file.br;
  if (gzip && file.gzip !== null) return file.gzip;
  return file.identity;
}

function write(req: IncomingMessage, res: ServerResponse, file: Asset, requestId: string): void {
  const chosen = pick(req.headers["accept-encoding"], file);
  const headers: Record<string, string | number> = {
    ...SECURITY_HEADERS,
    "content-type": file.type,
    "cache-control": file.cache,
    etag: chosen.etag,
    "portcullis-request-id": requestId,
  };
  if (file.gzip !== null || file.br !== null) headers.vary = "accept-encoding";
  if (chosen === file.br) headers["content-encoding"] = "br";
  else if (chosen === file.gzip) headers["content-encoding"] = "gzip";
  const match = req.headers["if-none-match"];
  if (typeof match === "string" && match.split(",").some((t) => t.trim() === chosen.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  headers["content-length"] = chosen.body.length;
  res.writeHead(200, headers);
  if (req.method === "HEAD") res.end();
  else res.end(chosen.body);
}

function redirect(res: ServerResponse, requestId: string): void {
  res.writeHead(302, { ...SECURITY_HEADERS, location: CONSOLE_PREFIX, "cache-control": "no-store", "content-length": 0, "portcullis-request-id": requestId });
  res.end();
}

/**
 * Answers `/`, `/console` and `/console/…` (true); any other path is left to the admin API
 * (false). The request's body, if any, is not read (GET and HEAD have none; another method is
 * refused and the connection's remaining bytes drained by node).
 */
export function serveConsole(files: ConsoleFiles | null, req: IncomingMessage, res: ServerResponse, path: string, requestId: string): boolean {
  const root = path === "/" || path === "/console";
  if (!root && !path.startsWith(CONSOLE_PREFIX)) return false;
  const method = req.method ?? "";
  // `/` with another method is the admin API's (ROUTE_NOT_FOUND there, audited as such).
  if (path === "/" && method !== "GET" && method !== "HEAD") return false;
  req.resume();
  const headers = { headers: SECURITY_HEADERS };
  if (method !== "GET" && method !== "HEAD") {
    sendDenial(res, deny("ROUTE_NOT_FOUND", `${method} ${path}: the console's files are read with GET or HEAD`), requestId, headers);
    return true;
  }
  if (root) {
    redirect(res, requestId);
    return true;
  }
  if (files === null || !files.ok) {
    sendDenial(res, deny("CONSOLE_NOT_AVAILABLE", files === null ? "no console directory configured" : files.reason), requestId, headers);
    return true;
  }
  const rest = path.slice(CONSOLE_PREFIX.length);
  if (CLIMBING.test(rest)) {
    sendDenial(res, deny("PATH_NOT_CANONICAL", "a console path may not contain dot segments, backslashes or control characters"), requestId, headers);
    return true;
  }
  const file = rest === "" ? files.index : files.files.get(rest);
  if (file !== undefined) {
    write(req, res, file, requestId);
    return true;
  }
  // A missing asset is a 404 (a stale page asking for a script of a previous build must not get HTML);
  // any other path is a route of the single-page app.
  if (rest.startsWith("assets/")) {
    sendDenial(res, deny("ROUTE_NOT_FOUND", "no such console asset"), requestId, headers);
    return true;
  }
  write(req, res, files.index, requestId);
  return true;
}
