import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { errorCatalogue } from "../../src/errors/catalogue.js";

const root = fileURLToPath(new URL("../../../../", import.meta.url));

describe("documentation stays in step with the code", () => {
  it("docs/errors.md lists every error code with its status and message", () => {
    const doc = readFileSync(`${root}docs/errors.md`, "utf8");
    for (const [code, entry] of Object.entries(errorCatalogue)) {
      expect(doc).toContain(`| \`${code}\` | ${entry.status} | ${entry.message} |`);
    }
    const listed = [...doc.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(listed.sort()).toEqual(Object.keys(errorCatalogue).sort());
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
