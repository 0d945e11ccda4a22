import type { ServerResponse } from "node:http";
import type { Readiness, ReadinessReport } from "../core/readiness.js";
import { errorCatalogue } from "../errors/catalogue.js";
import { sendJson } from "./http.js";

/**
 * The gateway's probes (docs/operations-endpoints.md), served by the gateway and the authorizer
 * before anything else: unauthenticated, never audited, never charged against a limit.
 *
 *   GET|HEAD /portcullis/v1/healthz   200 {"status":"ok"} while serving; 503
 *                                     {"status":"draining","code":"DRAINING"} once draining
 *   GET|HEAD /portcullis/v1/readyz    200 {"status":"ready","checks":{…}} when every dependency
 *                                     answers, else 503 {"status":"not_ready","code":"NOT_READY",
 *                                     "checks":{…}}; draining: 503 with code DRAINING
 *
 * Each check is `{ "status": "ok" | "failed" | "timeout", "code"?: <catalogue code>, "ms" }`:
 * names and codes only, never an error's message.
 */
export const HEALTHZ_PATH = "/portcullis/v1/healthz";
export const READYZ_PATH = "/portcullis/v1/readyz";

const OK_BODY = JSON.stringify({ status: "ok" });
const DRAINING_BODY = JSON.stringify({ status: "draining", code: "DRAINING", message: errorCatalogue.DRAINING.message });

/** True for a probe's path (the gateway routes it here before its own endpoints). */
export function isProbe(path: string): boolean {
  return path === HEALTHZ_PATH || path === READYZ_PATH;
}

export function readinessBody(report: ReadinessReport): string {
  return report.ready
    ? JSON.stringify({ status: "ready", checks: report.checks })
    : JSON.stringify({ status: "not_ready", code: "NOT_READY", message: errorCatalogue.NOT_READY.message, checks: report.checks });
}

/**
 * Answers a probe. `draining`: the process is shutting down. A method other than GET or HEAD is
 * 405-less by design: probes are answered ROUTE_NOT_FOUND by the caller (false returned).
 */
export function serveProbe(path: string, method: string, res: ServerResponse, requestId: string, draining: boolean, readiness: Readiness | null): boolean | Promise<void> {
  if (method !== "GET" && method !== "HEAD") return false;
  if (draining) {
    sendJson(res, 503, DRAINING_BODY, requestId, { close: true });
    return true;
  }
  if (path === HEALTHZ_PATH || readiness === null) {
    // Without dependencies to check (no readiness given), ready means alive.
    sendJson(res, 200, path === HEALTHZ_PATH ? OK_BODY : JSON.stringify({ status: "ready", checks: {} }), requestId);
    return true;
  }
  return readiness.check().then((report) => {
    sendJson(res, report.ready ? 200 : 503, readinessBody(report), requestId);
  });
}
