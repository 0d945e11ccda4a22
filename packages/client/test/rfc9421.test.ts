/**
 * The generic RFC 9421 layer against the RFC's own Appendix B, copied exactly: the test request
 * (B.2), the shared secret (B.1.5), the Ed25519 test key (B.1.4), and the signatures of B.2.5
 * (hmac-sha256) and B.2.6 (ed25519).
 */
import { createPublicKey, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  contentDigest,
  importHmacKey,
  importPrivateKey,
  serializeSignature,
  serializeSignatureInput,
  serializeSignatureParams,
  signatureBase,
  signSignatureBase,
} from "../src/entry/index.js";

// B.1.5 test-shared-secret (base64 of the 64-byte key).
const SHARED_SECRET = "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";

// B.1.4 test-key-ed25519.
const ED25519_PUBLIC = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----`;
const ED25519_PRIVATE = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----`;

// B.2: the test request.
const RFC_REQUEST = {
  method: "POST",
  url: "https://example.com/foo?param=Value&Pet=dog",
  headers: {
    Host: "example.com",
    Date: "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
    "Content-Length": "18",
  },
};
const RFC_BODY = '{"hello": "world"}';

describe("RFC 9421 B.2.5: signing a request using hmac-sha256", () => {
  const components = ["date", "@authority", "content-type"];
  const params = { created: 1618884473, keyid: "test-shared-secret" };

  it("serializes the RFC's Signature-Input and signature base", () => {
    expect(serializeSignatureInput("sig-b25", components, params)).toBe(
      'sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"',
    );
    expect(signatureBase(RFC_REQUEST, components, params)).toBe(
      [
        '"date": Tue, 20 Apr 2021 02:07:55 GMT',
        '"@authority": example.com',
        '"content-type": application/json',
        '"@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"',
      ].join("\n"),
    );
  });

  it("reproduces the RFC's signature from the decoded secret bytes", async () => {
    const key = await importHmacKey(new Uint8Array(Buffer.from(SHARED_SECRET, "base64")));
    const signature = await signSignatureBase("hmac-sha256", key, signatureBase(RFC_REQUEST, components, params));
    expect(serializeSignature("sig-b25", signature)).toBe("sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:");
  });

  it("gives a different signature for the secret's base64 text used as UTF-8 (the Portcullis string form)", async () => {
    const key = await importHmacKey(SHARED_SECRET);
    const signature = await signSignatureBase("hmac-sha256", key, signatureBase(RFC_REQUEST, components, params));
    expect(Buffer.from(signature).toString("base64")).not.toBe("pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=");
  });
});

describe("RFC 9421 B.2.6: signing a request using ed25519", () => {
  const components = ["date", "@method", "@path", "@authority", "content-type", "content-length"];
  const params = { created: 1618884473, keyid: "test-key-ed25519" };
  const expectedBase = [
    '"date": Tue, 20 Apr 2021 02:07:55 GMT',
    '"@method": POST',
    '"@path": /foo',
    '"@authority": example.com',
    '"content-type": application/json',
    '"content-length": 18',
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"',
  ].join("\n");
  const expectedSignature = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==";

  it("builds the RFC's signature base", () => {
    expect(signatureBase(RFC_REQUEST, components, params)).toBe(expectedBase);
  });

  it("reproduces the RFC's signature with the PKCS#8 test key (Ed25519 is deterministic)", async () => {
    const key = await importPrivateKey(ED25519_PRIVATE, "ed25519");
    const signature = await signSignatureBase("ed25519", key, signatureBase(RFC_REQUEST, components, params));
    expect(serializeSignature("sig-b26", signature)).toBe(`sig-b26=:${expectedSignature}:`);
    expect(verify(null, Buffer.from(expectedBase), createPublicKey(ED25519_PUBLIC), signature)).toBe(true);
  });
});

describe("RFC 9530: Content-Digest of the test request's body", () => {
  it("matches the RFC's sha-256 example for a string and for the same bytes", async () => {
    expect(await contentDigest(RFC_BODY)).toBe("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
    expect(await contentDigest(new TextEncoder().encode(RFC_BODY))).toBe("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
    expect(await contentDigest('{"hello": "world!"}')).not.toBe("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
  });
});

describe("serializeSignatureParams", () => {
  it("keeps the parameters in the order given and escapes strings", () => {
    expect(serializeSignatureParams([], { created: 1618884473, keyid: "test-key-rsa-pss", nonce: "b3k2pp5k7z-50gnwp.yemd" })).toBe(
      '();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"',
    );
    expect(serializeSignatureParams(["@query"], { tag: 'a"b\\c', expires: 0 })).toBe('("@query");tag="a\\"b\\\\c";expires=0');
  });

  it("refuses values Structured Fields cannot carry", () => {
    expect(() => serializeSignatureParams([], { keyid: "caf\u00e9" })).toThrow(TypeError);
    expect(() => serializeSignatureParams([], { keyid: "a\nb" })).toThrow(TypeError);
    expect(() => serializeSignatureParams([], { created: 1.5 })).toThrow(TypeError);
    expect(() => serializeSignatureParams([], { created: -1 })).toThrow(TypeError);
    expect(() => serializeSignatureParams([], { created: 1e16 })).toThrow(TypeError);
    expect(() => serializeSignatureParams([], JSON.parse('{"bogus":"x"}') as object)).toThrow(TypeError);
    expect(() => serializeSignatureInput("Sig1", [], {})).toThrow(TypeError);
  });

  it("refuses unsupported, upper-case and repeated components", () => {
    expect(() => serializeSignatureParams(["@status"], {})).toThrow(TypeError);
    expect(() => serializeSignatureParams(["Content-Type"], {})).toThrow(TypeError);
    expect(() => serializeSignatureParams(["@path", "@path"], {})).toThrow(TypeError);
  });
});

describe("signatureBase: derived and field components", () => {
  const all = ["@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"];

  it("derives every supported component from the URL", () => {
    const base = signatureBase({ method: "get", url: "HTTPS://API.Example.com:443/a/b%20c?x=1&y=%C3%A9#frag" }, all, {});
    expect(base.split("\n")).toEqual([
      '"@method": GET',
      '"@target-uri": https://api.example.com/a/b%20c?x=1&y=%C3%A9',
      '"@authority": api.example.com',
      '"@scheme": https',
      '"@request-target": /a/b%20c?x=1&y=%C3%A9',
      '"@path": /a/b%20c',
      '"@query": ?x=1&y=%C3%A9',
      '"@signature-params": ("@method" "@target-uri" "@authority" "@scheme" "@request-target" "@path" "@query")',
    ]);
  });

  it("gives @query as ? without a query, keeps a non-default port, and uses / for an empty path", () => {
    const base = signatureBase({ method: "POST", url: new URL("http://localhost:8080") }, ["@authority", "@path", "@query"], {});
    expect(base).toBe('"@authority": localhost:8080\n"@path": /\n"@query": ?\n"@signature-params": ("@authority" "@path" "@query")');
  });

  it("reads fields case-insensitively, trims them, and joins repeats with a comma", () => {
    const fromRecord = signatureBase({ method: "GET", url: "https://x.test/", headers: { "X-A": " one ", "x-b": ["1", " 2"] } }, ["x-a", "x-b"], {});
    expect(fromRecord).toBe('"x-a": one\n"x-b": 1, 2\n"@signature-params": ("x-a" "x-b")');
    const headers = new Headers([
      ["x-b", "1"],
      ["x-b", "2"],
    ]);
    expect(signatureBase({ method: "GET", url: "https://x.test/", headers }, ["x-b"], {})).toBe('"x-b": 1, 2\n"@signature-params": ("x-b")');
  });

  it("refuses a covered field that is absent", () => {
    expect(() => signatureBase({ method: "GET", url: "https://x.test/", headers: {} }, ["content-digest"], {})).toThrow(TypeError);
  });
});
