/**
 * RFC 9421 Appendix B, copied exactly: the test request (B.2), the shared secret (B.1.5), the
 * Ed25519 test key (B.1.4), and the signatures of B.2.5 (hmac-sha256) and B.2.6 (ed25519).
 * The generic RFC 9421 layer must reproduce the signature bases and verify both signatures.
 */
import { createPrivateKey, createPublicKey, createSecretKey, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { verifySignature } from "../../src/signatures/algorithms.js";
import { checkContentDigest } from "../../src/signatures/content-digest.js";
import { type SignedRequest, parseSignatureHeaders, signatureBase } from "../../src/signatures/rfc9421.js";

// B.1.5 test-shared-secret (base64 of the 64-byte key).
const SHARED_SECRET =
  "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";

// B.1.4 test-key-ed25519.
const ED25519_PUBLIC = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----`;
const ED25519_PRIVATE = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----`;

// B.2: POST /foo?param=Value&Pet=dog, Host example.com.
const BODY = Buffer.from('{"hello": "world"}');
function rfcRequest(extra: Record<string, string>): SignedRequest {
  return {
    method: "POST",
    authority: "example.com",
    scheme: "https",
    path: "/foo",
    query: "param=Value&Pet=dog",
    headers: {
      host: "example.com",
      date: "Tue, 20 Apr 2021 02:07:55 GMT",
      "content-type": "application/json",
      "content-digest":
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
      "content-length": "18",
      ...extra,
    },
  };
}

function parse(req: SignedRequest) {
  const parsed = parseSignatureHeaders(req.headers["signature-input"], req.headers.signature);
  if ("ok" in parsed) throw new Error(`unexpected denial ${parsed.code}`);
  return parsed;
}

describe("RFC 9421 B.2.5: signing a request using hmac-sha256", () => {
  const req = rfcRequest({
    "signature-input": 'sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"',
    signature: "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:",
  });
  const key = createSecretKey(Buffer.from(SHARED_SECRET, "base64"));

  it("builds the RFC's signature base", () => {
    const parsed = parse(req);
    expect(parsed.label).toBe("sig-b25");
    expect(parsed.params.keyid).toBe("test-shared-secret");
    expect(parsed.params.created).toBe(1618884473);
    expect(signatureBase(req, parsed)).toBe(
      [
        '"date": Tue, 20 Apr 2021 02:07:55 GMT',
        '"@authority": example.com',
        '"content-type": application/json',
        '"@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"',
      ].join("\n"),
    );
  });

  it("verifies the RFC's signature, and not a changed one", () => {
    const parsed = parse(req);
    const base = signatureBase(req, parsed);
    if (typeof base !== "string") throw new Error("no base");
    expect(verifySignature("hmac-sha256", key, base, parsed.signature)).toBe(true);
    expect(verifySignature("hmac-sha256", key, base.replace("example.com", "example.org"), parsed.signature)).toBe(false);
    const flipped = Buffer.from(parsed.signature);
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    expect(verifySignature("hmac-sha256", key, base, flipped)).toBe(false);
  });
});

describe("RFC 9421 B.2.6: signing a request using ed25519", () => {
  const req = rfcRequest({
    "signature-input":
      'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"',
    signature:
      "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:",
  });
  const expectedBase = [
    '"date": Tue, 20 Apr 2021 02:07:55 GMT',
    '"@method": POST',
    '"@path": /foo',
    '"@authority": example.com',
    '"content-type": application/json',
    '"content-length": 18',
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"',
  ].join("\n");

  it("builds the RFC's signature base", () => {
    expect(signatureBase(req, parse(req))).toBe(expectedBase);
  });

  it("verifies the RFC's signature with the public key", () => {
    const parsed = parse(req);
    expect(verifySignature("ed25519", createPublicKey(ED25519_PUBLIC), expectedBase, parsed.signature)).toBe(true);
    expect(verifySignature("ed25519", createPublicKey(ED25519_PUBLIC), expectedBase.replace("POST", "PUT"), parsed.signature)).toBe(false);
  });

  it("reproduces the RFC's signature with the private key (Ed25519 is deterministic)", () => {
    const signature = sign(null, Buffer.from(expectedBase), createPrivateKey(ED25519_PRIVATE));
    expect(signature.toString("base64")).toBe(
      "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==",
    );
  });
});

describe("RFC 9530 via RFC 9421 B.2: the test request's Content-Digest", () => {
  it("matches the body exactly, and not a changed body", () => {
    const header = rfcRequest({}).headers["content-digest"];
    expect(checkContentDigest(header, BODY)).toBeNull();
    expect(checkContentDigest(header, Buffer.from('{"hello": "world!"}'))?.code).toBe("CONTENT_DIGEST_MISMATCH");
  });
});
