import { type RouteTable, isCanonicalPath } from "../../authz/routes.js";
import type { AuthScheme } from "../../dialects/scheme.js";
import { deny } from "../../errors/catalogue.js";
import type { Dialect } from "../../keys/model.js";
import { authorityOf } from "../../signatures/rfc9421.js";
import type { Stage } from "./stage.js";

export interface RouteStageOptions {
  readonly routes: RouteTable;
  readonly schemes: ReadonlyMap<Dialect, AuthScheme>;
  /** The scheme clients use to reach the gateway (for the authority's default port). */
  readonly scheme: "http" | "https";
  /** If set, the only Host values (lower case, default port removed) served. */
  readonly authorities?: readonly string[] | undefined;
}

/**
 * Routing: the canonical path, the authority (Host) when the gateway serves only some, which
 * scheme the request is signed in (header presence only; parsing is stage 3), and the route
 * (default deny: an unmapped method and path is refused).
 */
export function routeStage(options: RouteStageOptions): Stage {
  const { routes, schemes } = options;
  const list = [...schemes.values()];
  const authorities = options.authorities === undefined || options.authorities.length === 0 ? null : new Set(options.authorities.map((a) => a.toLowerCase()));
  const clientScheme = options.scheme;
  for (const route of routes.routes) {
    if (route.dialect !== null && !schemes.has(route.dialect)) {
      throw new TypeError(`route ${route.id} uses the ${route.dialect} dialect, which this gateway does not speak`);
    }
  }
  return {
    name: "route",
    run(ctx) {
      const url = ctx.url;
      const q = url.indexOf("?");
      ctx.path = q < 0 ? url : url.slice(0, q);
      ctx.query = q < 0 ? null : url.slice(q + 1);
      if (!isCanonicalPath(ctx.path)) return deny("PATH_NOT_CANONICAL");
      ctx.authority = authorityOf(ctx.headers.host, clientScheme);
      if (authorities !== null && (ctx.authority === undefined || !authorities.has(ctx.authority))) return deny("AUTHORITY_NOT_ALLOWED");
      for (let i = 0; i < list.length; i++) {
        const scheme = list[i] as AuthScheme;
        if (!scheme.detect(ctx.headers)) continue;
        if (ctx.scheme === null) ctx.scheme = scheme;
        else ctx.schemeAmbiguous = true;
      }
      ctx.renderer = ctx.scheme;
      const route = routes.match(ctx.method, ctx.path);
      if (route === undefined) return deny("ROUTE_NOT_FOUND");
      ctx.route = route;
      if (ctx.renderer === null && route.dialect !== null) ctx.renderer = schemes.get(route.dialect) ?? null;
      return undefined;
    },
  };
}
