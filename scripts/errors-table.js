// Rewrites the table of docs/errors.md from the error catalogue (run after `npm run build`):
//   npm run docs:errors
import { readFileSync, writeFileSync } from "node:fs";
import { errorCatalogue } from "../packages/portcullis/dist/errors/catalogue.js";

const file = new URL("../docs/errors.md", import.meta.url);
const doc = readFileSync(file, "utf8");
const start = "<!-- errors:start -->";
const end = "<!-- errors:end -->";
const rows = Object.entries(errorCatalogue).map(([code, e]) => `| \`${code}\` | ${e.status} | ${e.message} |`);
const table = ["| code | status | meaning |", "| --- | --- | --- |", ...rows].join("\n");
const before = doc.slice(0, doc.indexOf(start) + start.length);
const after = doc.slice(doc.indexOf(end));
writeFileSync(file, `${before}\n${table}\n${after}`);
console.log(`docs/errors.md: ${rows.length} codes`);
