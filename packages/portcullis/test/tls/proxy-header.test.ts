/**
 * Certificate-bound keys behind a TLS-terminating proxy (docs/tls.md, "Behind a proxy"): the
 * client certificate passed on by a trusted proxy in `gateway.clientCertHeader` (nginx's
 * `$ssl_client_escaped_cert`, URL-encoded PEM) counts; the same header from any other peer does
 * not.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thumbprintOfEscapedPem } from "../../src/net/client-cert.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";
import { type TestPki, makePki } from "../support/tls.js";

let pki: TestPki;
let t: TestGateway;

beforeAll(async () => {
  pki = makePki();
  t = await makeGateway({ trustedProxies: ["10.0.0.0/8"], clientCertHeader: "x-client-cert" });
});
afterAll(async () => {
  await t.close();
  pki.cleanup();
});

/** How nginx writes $ssl_client_escaped_cert: the PEM with its newlines (and a few others) percent-encoded. */
function escaped(pem: Buffer): string {
  return pem.toString("utf8").replace(/\n/g, "%0A").replace(/ /g, "%20");
}

describe("the client certificate from a trusted proxy's header", () => {
  it("names the certificate as its DER thumbprint; anything else names none", () => {
    expect(thumbprintOfEscapedPem(escaped(pki.client1.certPem))).toBe(pki.client1.thumbprint);
    expect(thumbprintOfEscapedPem(encodeURIComponent(pki.client2.certPem.toString("utf8")))).toBe(pki.client2.thumbprint);
    for (const bad of ["", "%E0%A4%A", "-----BEGIN CERTIFICATE-----%0A-----END CERTIFICATE-----%0A", escaped(pki.client1.keyPem), `${escaped(pki.client1.certPem)}${escaped(pki.client2.certPem)}`, "x".repeat(20_000)]) {
      expect(thumbprintOfEscapedPem(bad)).toBeNull();
    }
  });

  it("a bound key is allowed with its certificate from a trusted proxy, refused otherwise", async () => {
    const { key, secret } = await t.createKey({ certThumbprint: pki.client1.thumbprint });
    const send = async (remoteAddress: string, cert?: Buffer): Promise<{ status: number; code: unknown }> => {
      const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: secret ?? "", created: t.clock.seconds });
      const res = await t.inject({ method: "GET", url: "/api/v3/account", remoteAddress, headers: { ...headers, ...(cert === undefined ? {} : { "x-client-cert": escaped(cert) }) } });
      return { status: res.statusCode, code: (res.json<{ code?: unknown }>()).code };
    };
    expect(await send("10.1.2.3", pki.client1.certPem)).toEqual({ status: 200, code: undefined });
    expect(await send("10.1.2.3", pki.client2.certPem)).toEqual({ status: 401, code: "KEY_CERT_MISMATCH" });
    expect(await send("10.1.2.3")).toEqual({ status: 401, code: "KEY_CERT_MISMATCH" });
    // The same header from a peer that is not a trusted proxy is not believed.
    expect(await send("203.0.113.9", pki.client1.certPem)).toEqual({ status: 401, code: "KEY_CERT_MISMATCH" });
  });
});
