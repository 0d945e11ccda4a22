import { thumbprintOfEscapedPem } from "./client-cert.js";
import { CidrSet, DEFAULT_IPV6_PREFIX, IPV6_PREFIX_MAX, IPV6_PREFIX_MIN, addressGroup, formatIp, parseIp, type ParsedIp } from "./ip.js";

export interface ClientAddress {
  readonly ip: ParsedIp;
  /** Canonical text form, as used in logs, identity headers and allowlist errors. */
  readonly text: string;
  /**
   * What per-address limits, bans and failure blocks count: the address itself for IPv4 (an
   * IPv4-mapped IPv6 address is IPv4), its prefix for IPv6 (`addressGroup`). Allowlists and
   * session binding match the exact address (`ip`, `text`), never this.
   */
  readonly group: string;
}

/**
 * Stage 1 of the pipeline: who is the client? The socket's peer, unless that peer is a configured
 * trusted proxy, in which case X-Forwarded-For is walked from the right, skipping trusted hops, and
 * the first untrusted hop is the client. A forwarding header from any other peer is ignored, so a
 * caller cannot choose its own address.
 */
export class ClientAddressResolver {
  private readonly trusted: CidrSet | null;
  private readonly ipv6Prefix: number;
  /**
   * The header a trusted proxy that terminates TLS passes the client certificate in (nginx's
   * `$ssl_client_escaped_cert`: the URL-encoded PEM), lower case; null: none is believed.
   */
  readonly clientCertHeader: string | null;

  /**
   * @param trustedProxies the peers whose X-Forwarded-For is believed.
   * @param ipv6Prefix the prefix length IPv6 clients are grouped by for limits, bans and blocks
   *   (32 to 128; default 64).
   */
  constructor(trustedProxies: readonly string[], ipv6Prefix: number = DEFAULT_IPV6_PREFIX, clientCertHeader: string | null = null) {
    if (!Number.isInteger(ipv6Prefix) || ipv6Prefix < IPV6_PREFIX_MIN || ipv6Prefix > IPV6_PREFIX_MAX) {
      throw new TypeError(`ipv6Prefix must be an integer from ${IPV6_PREFIX_MIN} to ${IPV6_PREFIX_MAX}`);
    }
    const set = new CidrSet(trustedProxies);
    this.trusted = set.size === 0 ? null : set;
    this.ipv6Prefix = ipv6Prefix;
    if (clientCertHeader !== null && (!/^[a-z0-9-]{1,64}$/.test(clientCertHeader) || this.trusted === null)) {
      throw new TypeError("clientCertHeader must be a lower-case header name, with trusted proxies to believe it from");
    }
    this.clientCertHeader = clientCertHeader;
  }

  /**
   * The client certificate a trusted proxy passed on (`clientCertHeader`): its thumbprint, or null
   * when the header is absent, empty or not a PEM certificate. Undefined when the peer is not a
   * trusted proxy (or no header is configured): the connection's own certificate counts.
   */
  forwardedCert(socketAddress: string | undefined, headers: Readonly<Record<string, string | string[] | undefined>>): string | null | undefined {
    const name = this.clientCertHeader;
    if (name === null || this.trusted === null || socketAddress === undefined) return undefined;
    const peer = parseIp(socketAddress);
    if (peer === null || !this.trusted.has(peer)) return undefined;
    const value = headers[name];
    return typeof value === "string" ? thumbprintOfEscapedPem(value) : null;
  }

  /** The client address of a parsed IP (a surface that knows its peer some other way). */
  address(ip: ParsedIp): ClientAddress {
    const text = formatIp(ip);
    return { ip, text, group: ip.v === 4 ? text : addressGroup(ip, this.ipv6Prefix) };
  }

  resolve(socketAddress: string | undefined, forwardedFor: string | string[] | undefined): ClientAddress | null {
    if (socketAddress === undefined) return null;
    const peer = parseIp(socketAddress);
    if (peer === null) return null;
    if (this.trusted === null || forwardedFor === undefined || !this.trusted.has(peer)) {
      return this.address(peer);
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
    return this.address(client);
  }
}
