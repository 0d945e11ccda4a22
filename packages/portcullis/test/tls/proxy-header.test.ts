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

  it("no client-certificate header reaches the upstream: the configured one (any case, `_` for `-`) nor the other proxies' names", async () => {
    const { key, secret } = await t.createKey({});
    const forged = escaped(pki.client1.certPem);
    const certHeaders = {
      "X_Client_Cert": forged,
      "client-cert": `:${pki.client1.thumbprint}:`,
      "client-cert-chain": `:${pki.client1.thumbprint}:`,
      "x-ssl-client-cert": forged,
      "ssl-client-cert": forged,
      "x-ssl-client-verify": "SUCCESS",
      "ssl-client-verify": "SUCCESS",
      "x-ssl-client-s-dn": "CN=victim",
      "x-client-verify": "SUCCESS",
      "x-client-dn": "CN=victim",
      "x-ssl-cert": forged,
      "x-arr-clientcert": forged,
      "x-amzn-mtls-clientcert": forged,
      "x-amzn-mtls-clientcert-leaf": forged,
      "x-forwarded-client-cert": `Hash=${pki.client1.thumbprint}`,
      "x-app-trace": "kept",
    };
    for (const remoteAddress of ["203.0.113.9", "10.1.2.3"]) {
      const before = t.upstream.requests.length;
      const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: secret ?? "", created: t.clock.seconds });
      const res = await t.inject({ method: "GET", url: "/api/v3/account", remoteAddress, headers: { ...headers, ...certHeaders } });
      expect(res.statusCode).toBe(200);
      expect(t.upstream.requests.length).toBe(before + 1);
      const received = t.upstream.requests[before]?.headers ?? {};
      expect(received["x-app-trace"]).toBe("kept");
      const leaked = Object.keys(received).filter((name) => /cert|ssl|client-verify|client-dn/.test(name));
      expect(leaked).toEqual([]);
    }
  });

  it("a configured header of any name is dropped before the upstream, as sent by anyone", async () => {
    const custom = await makeGateway({ trustedProxies: ["10.0.0.0/8"], clientCertHeader: "x-mtls-pem" });
    try {
      const { key, secret } = await custom.createKey({});
      for (const remoteAddress of ["203.0.113.9", "10.1.2.3"]) {
        const before = custom.upstream.requests.length;
        const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: secret ?? "", created: custom.clock.seconds });
        const res = await custom.inject({ method: "GET", url: "/api/v3/account", remoteAddress, headers: { ...headers, "X-Mtls-Pem": escaped(pki.client1.certPem), x_mtls_pem: "x" } });
        expect(res.statusCode).toBe(200);
        const received = custom.upstream.requests[before]?.headers ?? {};
        expect(Object.keys(received).filter((name) => name.includes("mtls"))).toEqual([]);
      }
    } finally {
      await custom.close();
    }
  });
});
