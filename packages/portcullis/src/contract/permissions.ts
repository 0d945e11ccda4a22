/**
 * The permission catalogue. A route requires one permission (or is `public`); a key holds scopes.
 * A scope grants the permission of the same name; `admin:*` grants every `admin:` permission.
 * Nothing implies anything else: a `trade` key cannot read balances unless it also has `read`.
 * `admin:approvers` manages approvers and `admin:approvals` lists, shows, approves, rejects and
 * cancels held operations (docs/approvals.md); both are for operator keys only. `admin:anomalies`
 * lists, shows and undoes the behaviour stage's anomaly actions (docs/behaviour.md); an account
 * admin key sees only its own account's. `admin:audit` searches, exports and verifies the audit log
 * (docs/audit.md); `admin:stats` reads the live request statistics the console charts
 * (docs/console.md).
 */
export const PERMISSIONS = ["read", "trade", "withdraw", "transfer", "admin:keys", "admin:policy", "admin:addresses", "admin:approvers", "admin:approvals", "admin:anomalies", "admin:audit", "admin:stats"] as const;
export type Permission = (typeof PERMISSIONS)[number];

export const ADMIN_WILDCARD = "admin:*";
export const PUBLIC = "public";
/** A route permission no scope grants: any valid API key or session may call the route. */
export const AUTHENTICATED = "authenticated";

/** What a route requires: a permission, or any authenticated caller. */
export type RoutePermission = Permission | typeof AUTHENTICATED;

const permissionSet: ReadonlySet<string> = new Set(PERMISSIONS);

export function isPermission(value: string): value is Permission {
  return permissionSet.has(value);
}

/** A scope a key may hold: a permission or the admin wildcard. */
export function isScope(value: string): boolean {
  return permissionSet.has(value) || value === ADMIN_WILDCARD;
}

/** Compiles a key's scopes into the set of permissions it grants. */
export function grantedPermissions(scopes: readonly string[]): ReadonlySet<string> {
  const granted = new Set<string>();
  for (const scope of scopes) {
    if (scope === ADMIN_WILDCARD) {
      for (const p of PERMISSIONS) if (p.startsWith("admin:")) granted.add(p);
    } else if (permissionSet.has(scope)) {
      granted.add(scope);
    }
  }
  return granted;
}
