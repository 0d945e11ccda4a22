import type { IncomingMessage, ServerResponse } from "node:http";
import type { Portcullis } from "../core/core.js";
import { SessionEndpoints } from "../gateway/session-endpoints.js";
import type { Logger } from "../log/logger.js";
import { type ConsoleFiles, loadConsole, serveConsole } from "./console.js";

/**
 * What the admin listener answers before its own route table (issue 18, docs/console-backend.md):
 *
 * - the session endpoints (`POST`/`DELETE /portcullis/v1/session`, `POST …/session/refresh`), so
 *   that the console signs in with the user's own key (a signed logon, then every call signed with
 *   the session's HMAC: no cookie, no CSRF surface). They run the session endpoints' own lifecycle,
 *   audited with the surface `admin`; the session they issue is accepted by every admin route,
 *   with its (possibly narrowed) scopes, because the admin pipeline's key stage checks sessions
 *   like any other credential;
 * - the console's static files under `/console/` (admin/console.ts), and the redirects of `/` and
 *   `/console` to it.
 *
 * Everything else goes on to the admin API's lifecycle.
 */
export interface AdminFrontOptions {
  readonly core: Portcullis;
  readonly logger: Logger;
  /** The console's built files (`packages/console/dist`); absent: its paths answer CONSOLE_NOT_AVAILABLE. */
  readonly console?: { readonly dir: string } | undefined;
}

export class AdminFront {
  private readonly sessions: SessionEndpoints | null;
  private readonly files: ConsoleFiles | null;

  constructor(options: AdminFrontOptions) {
    // Sessions off in the configuration: the paths fall through to the admin routes (ROUTE_NOT_FOUND).
    this.sessions = options.core.sessions === null ? null : new SessionEndpoints(options.core);
    this.files = options.console === undefined ? null : loadConsole(options.console.dir, options.logger);
  }

  /** Answers the request if it is one of these paths (true), else leaves it untouched (false). */
  async serve(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<boolean> {
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    if (this.sessions !== null && SessionEndpoints.serves(path)) {
      await this.sessions.serve(req, res, requestId, "admin");
      return true;
    }
    return serveConsole(this.files, req, res, path, requestId);
  }
}
