import { type OperatorArea, errorCatalogue } from "./catalogue.js";

/**
 * docs/errors.md's tables, generated from the catalogue: `npm run docs:errors` writes them
 * (scripts/errors-table.js), and a test fails when the file differs from what this renders. Each
 * group has its own block between `<!-- errors:<group>:start -->` and `<!-- errors:<group>:end -->`.
 */

const AREA_TITLES: Readonly<Record<OperatorArea, string>> = {
  config: "configuration",
  "data-dir": "data directory",
  custody: "custody",
  audit: "audit commands",
  cli: "the CLI",
  demo: "the demo (portcullis demo)",
};

function cell(text: string): string {
  return text.replaceAll("|", "\\|");
}

function requestTable(): string {
  const rows: string[] = ["| code | status | meaning |", "| --- | --- | --- |"];
  for (const [code, entry] of Object.entries(errorCatalogue)) {
    if (entry.group === "request") rows.push(`| \`${code}\` | ${entry.status} | ${cell(entry.message)} |`);
  }
  return rows.join("\n");
}

function operatorTable(): string {
  const rows: string[] = ["| code | area | exit | meaning |", "| --- | --- | --- | --- |"];
  for (const [code, entry] of Object.entries(errorCatalogue)) {
    if (entry.group === "operator") rows.push(`| \`${code}\` | ${AREA_TITLES[entry.area]} | ${entry.exit} | ${cell(entry.message)} |`);
  }
  return rows.join("\n");
}

const TABLES = { request: requestTable, operator: operatorTable } as const;

/** `doc` with every group's block replaced by the table rendered from the catalogue. */
export function renderErrorTables(doc: string): string {
  let out = doc;
  for (const [group, render] of Object.entries(TABLES)) {
    const start = `<!-- errors:${group}:start -->`;
    const end = `<!-- errors:${group}:end -->`;
    const from = out.indexOf(start);
    const to = out.indexOf(end);
    if (from < 0 || to < from) throw new Error(`docs/errors.md has no ${start} … ${end} block`);
    out = `${out.slice(0, from + start.length)}\n${render()}\n${out.slice(to)}`;
  }
  return out;
}
