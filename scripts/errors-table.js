// Rewrites the tables of docs/errors.md from the error catalogue, one per group (request
// refusals, operator failures); run after `npm run build`:
//   npm run docs:errors
// test/docs/docs.test.ts fails when the file is not what this writes.
import { readFileSync, writeFileSync } from "node:fs";
import { errorCatalogue } from "../packages/portcullis/dist/errors/catalogue.js";
import { renderErrorTables } from "../packages/portcullis/dist/errors/docs-table.js";

const file = new URL("../docs/errors.md", import.meta.url);
writeFileSync(file, renderErrorTables(readFileSync(file, "utf8")));
const counts = { request: 0, operator: 0 };
for (const entry of Object.values(errorCatalogue)) counts[entry.group] += 1;
console.log(`docs/errors.md: ${counts.request} request refusals, ${counts.operator} operator failures`);
