import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";

/**
 * The client certificate of a connection, as certificate-bound keys name it (docs/tls.md): the
 * SHA-256 thumbprint of the certificate's DER encoding, base64url without padding — RFC 8705's
 * `x5t#S256` confirmation value.
 */
export function certThumbprint(der: Buffer): string {
  return createHash("sha256").update(der).digest("base64url");
}

/** Computed once per connection: a keep-alive connection's requests share its certificate (renegotiation refused). */
const bySocket = new WeakMap<Socket, string | null>();

/**
 * The thumbprint of the certificate the peer proved over TLS, or null: a plain-TCP connection, no
 * certificate, or one that does not chain to the listener's CA (`socket.authorized` is false:
 * with `clientAuth: "optional"` such a handshake completes, but its certificate names no one).
 */
export function peerCertThumbprint(socket: Socket): string | null {
  if (!(socket instanceof TLSSocket)) return null;
  const known = bySocket.get(socket);
  if (known !== undefined) return known;
  // The answer holds for the connection's life only if its certificate cannot change: a TLS 1.2
  // renegotiation is refused from here on, on any server (a TLS error, which node:http's servers
  // answer by closing the connection). The gateway's listeners refuse it from the handshake on;
  // an application's own https server, under the embedded middleware, may allow it.
  socket.disableRenegotiation();
  let thumbprint: string | null = null;
  if (socket.authorized) {
    // An empty object when the peer sent none; null once the socket is destroyed (a client that
    // sent its request and reset the connection before its first look here): none.
    const cert = socket.getPeerCertificate() as { raw?: Buffer } | null;
    const raw = cert?.raw;
    if (Buffer.isBuffer(raw) && raw.length > 0) thumbprint = certThumbprint(raw);
  }
  bySocket.set(socket, thumbprint);
  return thumbprint;
}

const PEM_CERT_RE = /^-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE-----\r?\n?$/;

/**
 * The thumbprint of a certificate a TLS-terminating proxy passed on as URL-encoded PEM (nginx's
 * `$ssl_client_escaped_cert`), or null: empty, not URL-encoded, or not one PEM certificate. The
 * proxy verified the certificate; this only names it (no X.509 parsing: bytes that are not a
 * certificate match no binding).
 */
export function thumbprintOfEscapedPem(value: string): string | null {
  if (value === "" || value.length > 16_384) return null;
  let pem: string;
  try {
    pem = decodeURIComponent(value);
  } catch {
    return null;
  }
  const body = PEM_CERT_RE.exec(pem)?.[1];
  if (body === undefined) return null;
  const der = Buffer.from(body.replace(/[\r\n]/g, ""), "base64");
  return der.length === 0 ? null : certThumbprint(der);
}
