import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { errorCatalogue } from "../../src/errors/catalogue.js";
import { renderErrorTables } from "../../src/errors/docs-table.js";

const root = fileURLToPath(new URL("../../../../", import.meta.url));

describe("documentation stays in step with the code", () => {
  it("docs/errors.md is what `npm run docs:errors` generates from the catalogue", () => {
    const doc = readFileSync(`${root}docs/errors.md`, "utf8");
    // Out of date: run `npm run docs:errors` and commit docs/errors.md.
    expect(doc).toBe(renderErrorTables(doc));
    const listed = [...doc.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
    expect(listed.sort()).toEqual(Object.keys(errorCatalogue).sort());
    expect(doc).toContain("| `SIGNATURE_INVALID` | 401 | The signature does not verify. |");
    expect(doc).toContain("| `CONFIG_INVALID` | configuration | 1 |");
  });

  it("the README starts with the two commands a new user runs", () => {
    const readme = readFileSync(`${root}README.md`, "utf8");
    const firstScreen = readme.split("\n").slice(0, 30).join("\n");
    expect(firstScreen).toContain("npm install && npm start");
    expect(firstScreen).toContain("npm install && npm test");
  });
});

describe("docs/native-scheme.md's worked example", () => {
  it("is what the gateway builds and verifies", async () => {
    const { createSecretKey } = await import("node:crypto");
    const { parseSignatureHeaders, signatureBase } = await import("../../src/signatures/rfc9421.js");
    const { verifySignature } = await import("../../src/signatures/algorithms.js");
    const { checkContentDigest } = await import("../../src/signatures/content-digest.js");
    const doc = readFileSync(`${root}docs/native-scheme.md`, "utf8");
    const base = /```text\n([\s\S]*?)\n```/.exec(doc)?.[1] ?? "";
    const http = /```http\n([\s\S]*?)\n```/.exec(doc)?.[1] ?? "";
    const [head = "", body = ""] = http.split("\n\n");
    const lines = head.split("\n");
    const [method = "", target = ""] = (lines[0] ?? "").split(" ");
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) headers[line.slice(0, line.indexOf(":")).toLowerCase()] = line.slice(line.indexOf(":") + 2);
    const parsed = parseSignatureHeaders(headers["signature-input"], headers.signature);
    if ("ok" in parsed) throw new Error(parsed.code);
    const built = signatureBase({ method, authority: headers.host, scheme: "https", path: target, query: null, headers }, parsed);
    expect(built).toBe(base);
    const secret = /HMAC secret\s+`([^`]+)`/.exec(doc)?.[1] ?? "";
    expect(verifySignature("hmac-sha256", createSecretKey(Buffer.from(secret, "utf8")), base, parsed.signature)).toBe(true);
    expect(checkContentDigest(headers["content-digest"], Buffer.from(body))).toBeNull();
  });
});
