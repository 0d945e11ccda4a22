import type { RouteTable } from "../../authz/routes.js";
import type { AuthScheme, RequestContext } from "../../contract/request.js";
import { type Denial, deny } from "../../errors/catalogue.js";
import type { Dialect } from "../../contract/keys.js";
import type { Shield } from "../../limits/shield.js";
import { type Stage, retryAfter } from "./stage.js";

export interface ShieldStageOptions {
  readonly shield: Shield;
  readonly routes: RouteTable;
  readonly schemes: ReadonlyMap<Dialect, AuthScheme>;
}

/**
 * Stage 2, the pre-authentication shield: bans and authentication-failure blocks of the address
 * already known in this process, before any parsing. A refusal is rendered in the dialect the
 * caller speaks (its credential headers, else its route's dialect), so that a Binance client sees
 * Binance's 418, without the rest of routing.
 */
export function shieldStage(options: ShieldStageOptions): Stage {
  const { shield, routes, schemes } = options;
  const list = [...schemes.values()];
  const shielded = (ctx: RequestContext, code: "IP_BANNED" | "IP_BLOCKED", until: number): Denial => {
    for (const scheme of list) {
      if (scheme.detect(ctx.headers)) {
        ctx.renderer = scheme;
        break;
      }
    }
    if (ctx.renderer === null) {
      const q = ctx.url.indexOf("?");
      const dialect = routes.match(ctx.method, q < 0 ? ctx.url : ctx.url.slice(0, q))?.dialect ?? null;
      if (dialect !== null) ctx.renderer = schemes.get(dialect) ?? null;
    }
    return retryAfter(deny(code), ctx, until);
  };
  return {
    name: "shield",
    run(ctx) {
      const ip = ctx.client?.group ?? "";
      const banned = shield.bannedUntil(ip, ctx.now);
      if (banned !== null) return shielded(ctx, "IP_BANNED", banned);
      const blocked = shield.blockedIpUntil(ip, ctx.now);
      if (blocked !== null) return shielded(ctx, "IP_BLOCKED", blocked);
      return undefined;
    },
  };
}
