/**
 * docs/audit.md stays in step with the code: the event catalogue, the verification problems and the
 * commands' error codes are listed exactly, and every `audit` setting is documented.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { AUDIT_ERRORS } from "../../src/audit/errors.js";
import { AUDIT_EVENTS } from "../../src/audit/events.js";
import { AUDIT_PROBLEMS } from "../../src/audit/verify.js";
import { parseAuditConfig } from "../../src/audit/config.js";

const root = fileURLToPath(new URL("../../../../", import.meta.url));
const doc = readFileSync(`${root}docs/audit.md`, "utf8");

/** The first column of the rows of the table whose header starts with `| first |`. */
function column(first: string): string[] {
  const start = doc.indexOf(`| ${first} |`);
  const lines = doc.slice(start).split("\n");
  const end = lines.findIndex((l) => !l.startsWith("|"));
  return lines.slice(2, end).map((l) => /^\| `([^`]+)`/.exec(l)?.[1] ?? "");
}

describe("docs/audit.md", () => {
  it("lists every event with its durability class and description, and nothing else", () => {
    for (const [name, e] of Object.entries(AUDIT_EVENTS)) expect(doc).toContain(`| \`${name}\` | ${e.durability} | ${e.description} |`);
    expect(column("event").sort()).toEqual(Object.keys(AUDIT_EVENTS).sort());
  });

  it("lists every verification problem and every command error, with their meaning", () => {
    for (const [code, meaning] of Object.entries(AUDIT_PROBLEMS)) expect(doc).toContain(`| \`${code}\` | ${meaning} |`);
    for (const [code, meaning] of Object.entries(AUDIT_ERRORS)) expect(doc).toContain(`| \`${code}\` | ${meaning} |`);
    const codes = [...doc.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(codes.sort()).toEqual([...Object.keys(AUDIT_PROBLEMS), ...Object.keys(AUDIT_ERRORS)].sort());
  });

  it("documents every audit setting (here and in configuration.md) with its default", () => {
    const parsed = parseAuditConfig({}, "/data");
    if (!parsed.ok) throw new Error(parsed.message);
    const defaults = parsed.value;
    const config = readFileSync(`${root}docs/configuration.md`, "utf8");
    for (const [key, value] of Object.entries(defaults)) {
      // Numbers as they are; strings in code style (the spill directory as configured, relative).
      const shown = typeof value === "number" ? String(value) : `\`${key === "spillDir" ? "audit-spill" : value}\``;
      expect(doc).toContain(`| \`${key}\` | ${shown} |`);
      expect(config).toContain(`| \`audit.${key}\` |`);
    }
  });
});
