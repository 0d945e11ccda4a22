import { CidrSet, formatIp, parseIp, type ParsedIp } from "./ip.js";

export interface ClientAddress {
  readonly ip: ParsedIp;
  /** Canonical text form, as used in logs, identity headers and allowlist errors. */
  readonly text: string;
}

/**
 * Stage 1 of the pipeline: who is the client? The socket's peer, unless that peer is a configured
 * trusted proxy, in which case X-Forwarded-For is walked from the right, skipping trusted hops, and
 * the first untrusted hop is the client. A forwarding header from any other peer is ignored, so a
 * caller cannot choose its own address.
 */
export class ClientAddressResolver {
  private readonly trusted: CidrSet | null;

  constructor(trustedProxies: readonly string[]) {
    const set = new CidrSet(trustedProxies);
    this.trusted = set.size === 0 ? null : set;
  }

  resolve(socketAddress: string | undefined, forwardedFor: string | string[] | undefined): ClientAddress | null {
    if (socketAddress === undefined) return null;
    const peer = parseIp(socketAddress);
    if (peer === null) return null;
    if (this.trusted === null || forwardedFor === undefined || !this.trusted.has(peer)) {
      return { ip: peer, text: formatIp(peer) };
    }
    const header = typeof forwardedFor === "string" ? forwardedFor : forwardedFor.join(",");
    let client = peer;
    const hops = header.split(",");
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = parseIp((hops[i] ?? "").trim());
      // A garbled hop ends the walk: everything left of it was written by someone untrusted.
      if (hop === null) break;
      client = hop;
      if (!this.trusted.has(hop)) break;
    }
    return { ip: client, text: formatIp(client) };
  }
}
