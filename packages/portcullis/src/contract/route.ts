import type { Dialect } from "./keys.js";
import type { OperationKind } from "./operations.js";
import type { RoutePermission } from "./permissions.js";

/** A compiled route of the route table (authz/routes.ts): what a request was matched to. */
export interface Route {
  /** "METHOD /pattern", for logs and errors. */
  readonly id: string;
  readonly method: string;
  readonly pattern: string;
  /** The permission required ("authenticated": any valid key or session), or null for a public route. */
  readonly permission: RoutePermission | null;
  readonly weight: number;
  readonly tags: readonly string[];
  /** The venue dialect accepted besides native, or null. */
  readonly dialect: Dialect | null;
  /** Falls back to local limits when the shared hot store is down (see RouteSpec). */
  readonly degradable: boolean;
  /** The operation its requests carry, decoded by the operation stage (docs/operations.md); null: none. */
  readonly operation: OperationKind | null;
}
