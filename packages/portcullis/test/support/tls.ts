/**
 * Test support: certificates made at run time with the `openssl` CLI in a temporary directory —
 * a CA, two server certificates for 127.0.0.1 / localhost (the second one to reload to), two
 * client certificates under the CA, and one client certificate under another CA (it names no one).
 */
import { execFileSync } from "node:child_process";
import { X509Certificate, createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";

export interface CertPair {
  readonly cert: string;
  readonly key: string;
  /** The PEM texts. */
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
  /** base64url SHA-256 of the DER certificate (RFC 8705 x5t#S256), computed here independently. */
  readonly thumbprint: string;
  /** As node's getPeerCertificate().fingerprint256 shows it. */
  readonly fingerprint256: string;
}

export interface TestPki {
  readonly dir: string;
  readonly ca: CertPair;
  readonly server: CertPair;
  readonly server2: CertPair;
  readonly client1: CertPair;
  readonly client2: CertPair;
  /** A client certificate signed by another CA. */
  readonly stranger: CertPair;
  cleanup(): void;
}

function openssl(dir: string, args: readonly string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

function pair(dir: string, name: string): CertPair {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const certPem = readFileSync(cert);
  const x509 = new X509Certificate(certPem);
  // The DER bytes decoded from the PEM by hand (not node's X509Certificate.raw): an independent thumbprint.
  const b64 = certPem.toString("ascii").replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const thumbprint = createHash("sha256").update(Buffer.from(b64, "base64")).digest("base64url");
  return { cert, key, certPem, keyPem: readFileSync(key), thumbprint, fingerprint256: x509.fingerprint256 };
}

function makeCa(dir: string, name: string): void {
  openssl(dir, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`, "-subj", `/CN=${name}`, "-days", "2"]);
}

function issue(dir: string, ca: string, name: string, ext: string): void {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`]);
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`]);
}

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-tls-"));
  makeCa(dir, "ca");
  makeCa(dir, "other-ca");
  const serverExt = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
  const clientExt = "extendedKeyUsage=clientAuth\n";
  issue(dir, "ca", "server", serverExt);
  issue(dir, "ca", "server2", serverExt);
  issue(dir, "ca", "client1", clientExt);
  issue(dir, "ca", "client2", clientExt);
  issue(dir, "other-ca", "stranger", clientExt);
  return {
    dir,
    ca: pair(dir, "ca"),
    server: pair(dir, "server"),
    server2: pair(dir, "server2"),
    client1: pair(dir, "client1"),
    client2: pair(dir, "client2"),
    stranger: pair(dir, "stranger"),
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to 127.0.0.1:`port` is served (verified against `ca`). */
export function servedFingerprint(port: number, ca: CertPair): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ca: ca.certPem }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.once("error", reject);
  });
}
