/**
 * The floor for any reverse proxy written on Node: node:http in front, an undici Pool behind
 * (`pool.stream`, the same call the gateway's Forwarder makes), hop-by-hop headers dropped, and
 * nothing else: no body buffering, no request ids, no error mapping beyond a bare 502.
 */
import { createServer } from "node:http";
import { Pool } from "undici";

/** Hop-by-hop headers, and Host (undici sends the upstream's). */
const DROPPED = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"]);

function forwardable(headers) {
  const out = {};
  for (const name in headers) {
    if (!DROPPED.has(name) && headers[name] !== undefined) out[name] = headers[name];
  }
  return out;
}

/** A node:http server that forwards every request to `upstream` (an origin URL). */
export function createPlainProxy(upstream) {
  const pool = new Pool(upstream, { connections: 128, keepAliveTimeout: 30_000 });
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const hasBody = req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
    if (!hasBody) req.resume();
    const options = { path: req.url, method: req.method, headers: forwardable(req.headers), body: hasBody ? req : null };
    pool
      .stream(options, ({ statusCode, headers }) => {
        res.writeHead(statusCode, forwardable(headers));
        return res;
      })
      .catch(() => {
        if (res.headersSent) res.destroy();
        else res.writeHead(502).end();
      });
  });
  server.on("close", () => {
    pool.close().catch(() => undefined);
  });
  return server;
}
