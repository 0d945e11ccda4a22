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

/** Computed once per connection: a keep-alive connection's requests share its certificate. */
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
  let thumbprint: string | null = null;
  if (socket.authorized) {
    const cert = socket.getPeerCertificate();
    // An empty object when the peer sent none.
    const raw = (cert as { raw?: Buffer }).raw;
    if (Buffer.isBuffer(raw) && raw.length > 0) thumbprint = certThumbprint(raw);
  }
  bySocket.set(socket, thumbprint);
  return thumbprint;
}
