/**
 * IP addresses and CIDR sets, compiled once and matched with integer arithmetic. node:net's
 * BlockList answers the same question but costs about 2 µs per check, which is most of a
 * request's budget; this costs tens of nanoseconds.
 */

import { OperatorError } from "../errors/catalogue.js";

/** A parsed address: IPv4 as one 32-bit word; IPv6 as four. IPv4-mapped IPv6 becomes IPv4. */
export type ParsedIp = { readonly v: 4; readonly n: number } | { readonly v: 6; readonly w: readonly [number, number, number, number] };

function parseIpv4(s: string, start: number, end: number): number | null {
  let value = 0;
  let octets = 0;
  let i = start;
  while (i < end) {
    let octet = 0;
    let digits = 0;
    const octetStart = i;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      octet = octet * 10 + (c - 0x30);
      digits++;
      i++;
    }
    // No empty octets, no leading zeros (ambiguous octal in some stacks), no values above 255.
    if (digits === 0 || digits > 3 || octet > 255) return null;
    if (digits > 1 && s.charCodeAt(octetStart) === 0x30) return null;
    value = value * 256 + octet;
    octets++;
    if (i === end) break;
    if (s.charCodeAt(i) !== 0x2e || octets === 4) return null;
    i++;
    if (i === end) return null;
  }
  return octets === 4 ? value >>> 0 : null;
}

function parseHexGroup(s: string): number | null {
  if (s.length === 0 || s.length > 4) return null;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let d: number;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
    else return null;
    v = v * 16 + d;
  }
  return v;
}

function parseIpv6(input: string): ParsedIp | null {
  let s = input;
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  const groups: number[] = [];
  let tail: number[] = [];
  const doubleColon = s.indexOf("::");
  if (doubleColon !== s.lastIndexOf("::")) return null;
  const parseSide = (side: string, out: number[], allowV4: boolean): boolean => {
    if (side === "") return true;
    const parts = side.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i] ?? "";
      if (allowV4 && i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIpv4(part, 0, part.length);
        if (v4 === null) return false;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        const g = parseHexGroup(part);
        if (g === null) return false;
        out.push(g);
      }
    }
    return true;
  };
  if (doubleColon >= 0) {
    if (!parseSide(s.slice(0, doubleColon), groups, false)) return null;
    if (!parseSide(s.slice(doubleColon + 2), tail, true)) return null;
    if (groups.length + tail.length > 7) return null;
  } else {
    if (!parseSide(s, groups, true)) return null;
    if (groups.length !== 8) return null;
    tail = [];
  }
  const all = new Array<number>(8).fill(0);
  for (let i = 0; i < groups.length; i++) all[i] = groups[i] ?? 0;
  for (let i = 0; i < tail.length; i++) all[8 - tail.length + i] = tail[i] ?? 0;
  const word = (i: number): number => (((all[i] ?? 0) << 16) | (all[i + 1] ?? 0)) >>> 0;
  const w: [number, number, number, number] = [word(0), word(2), word(4), word(6)];
  // IPv4-mapped (::ffff:a.b.c.d) is the same host as a.b.c.d: dual-stack sockets report it so.
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return { v: 4, n: w[3] };
  return { v: 6, w };
}

/** Parses an IPv4 or IPv6 address (zone ids are dropped). Returns null for anything else. */
export function parseIp(s: string): ParsedIp | null {
  if (s.length === 0 || s.length > 64) return null;
  if (s.includes(":")) return parseIpv6(s);
  const n = parseIpv4(s, 0, s.length);
  return n === null ? null : { v: 4, n };
}

/** The canonical text of an address: dotted quad, or RFC 5952 compressed IPv6. */
export function formatIp(ip: ParsedIp): string {
  if (ip.v === 4) return `${ip.n >>> 24}.${(ip.n >>> 16) & 255}.${(ip.n >>> 8) & 255}.${ip.n & 255}`;
  const groups: number[] = [];
  for (const word of ip.w) groups.push(word >>> 16, word & 0xffff);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** The shortest and longest IPv6 prefix per-address mechanisms may group addresses by. */
export const IPV6_PREFIX_MIN = 32;
export const IPV6_PREFIX_MAX = 128;
/** The default: one /64, what a single subscriber (a home, a server) is usually given. */
export const DEFAULT_IPV6_PREFIX = 64;

/**
 * The address as per-address mechanisms (limits, bans, blocks) count it: IPv4 as itself; IPv6 by
 * its first `ipv6Prefix` bits ("2001:db8:1:2::/64"), since one subscriber holds a whole prefix and
 * could otherwise take a fresh budget per address. `ipv6Prefix` 128 counts each address alone.
 */
export function addressGroup(ip: ParsedIp, ipv6Prefix: number): string {
  if (ip.v === 4 || ipv6Prefix >= IPV6_PREFIX_MAX) return formatIp(ip);
  const w = ip.w;
  const net: [number, number, number, number] = [
    (w[0] & maskWord(ipv6Prefix)) >>> 0,
    (w[1] & maskWord(ipv6Prefix - 32)) >>> 0,
    (w[2] & maskWord(ipv6Prefix - 64)) >>> 0,
    (w[3] & maskWord(ipv6Prefix - 96)) >>> 0,
  ];
  return `${formatIp({ v: 6, w: net })}/${ipv6Prefix}`;
}

/** Normalises an address for display and keys (IPv4-mapped IPv6 becomes IPv4). */
export function normalizeIp(s: string): string | null {
  const ip = parseIp(s);
  return ip === null ? null : formatIp(ip);
}

interface Cidr4 {
  readonly net: number;
  readonly mask: number;
}
interface Cidr6 {
  readonly net: readonly [number, number, number, number];
  readonly mask: readonly [number, number, number, number];
}

/** An address or CIDR block that does not parse (CIDR_INVALID): the message quotes it. */
export class CidrError extends OperatorError<"CIDR_INVALID"> {
  override name = "CidrError";

  constructor(message: string) {
    super("CIDR_INVALID", message);
  }
}

function maskWord(bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return 0xffffffff;
  return (0xffffffff << (32 - bits)) >>> 0;
}

/** Parses "a.b.c.d/n", "x::y/n" or a bare address (a host route). Throws CidrError. */
export function parseCidr(text: string): { v: 4; cidr: Cidr4; canonical: string } | { v: 6; cidr: Cidr6; canonical: string } {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  if (addrText.includes("%")) throw new CidrError(`"${text}": zone ids are not allowed in an allowlist`);
  const ip = parseIp(addrText);
  if (ip === null) throw new CidrError(`"${text}" is not an IPv4 or IPv6 address or CIDR block`);
  const max = ip.v === 4 && !addrText.includes(":") ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const bitsText = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(bitsText)) throw new CidrError(`"${text}": bad prefix length`);
    bits = Number(bitsText);
    if (bits > max) throw new CidrError(`"${text}": prefix length above ${max}`);
  }
  if (ip.v === 4) {
    // An IPv4-mapped IPv6 block (::ffff:0:0/96 and longer) is an IPv4 block.
    const v4bits = max === 128 ? bits - 96 : bits;
    if (v4bits < 0) throw new CidrError(`"${text}": an IPv4-mapped block must be /96 or longer`);
    const mask = maskWord(v4bits);
    const net = (ip.n & mask) >>> 0;
    return { v: 4, cidr: { net, mask }, canonical: `${formatIp({ v: 4, n: net })}/${v4bits}` };
  }
  const mask: [number, number, number, number] = [maskWord(bits), maskWord(bits - 32), maskWord(bits - 64), maskWord(bits - 96)];
  const net: [number, number, number, number] = [
    (ip.w[0] & mask[0]) >>> 0,
    (ip.w[1] & mask[1]) >>> 0,
    (ip.w[2] & mask[2]) >>> 0,
    (ip.w[3] & mask[3]) >>> 0,
  ];
  return { v: 6, cidr: { net, mask }, canonical: `${formatIp({ v: 6, w: net })}/${bits}` };
}

/** A compiled set of CIDR blocks. `has` takes a parsed address; build once, match per request. */
export class CidrSet {
  private readonly v4: Cidr4[] = [];
  private readonly v6: Cidr6[] = [];
  readonly canonical: readonly string[];

  constructor(blocks: readonly string[]) {
    const canonical: string[] = [];
    for (const block of blocks) {
      const parsed = parseCidr(block.trim());
      if (parsed.v === 4) this.v4.push(parsed.cidr);
      else this.v6.push(parsed.cidr);
      canonical.push(parsed.canonical);
    }
    this.canonical = canonical;
  }

  get size(): number {
    return this.v4.length + this.v6.length;
  }

  has(ip: ParsedIp): boolean {
    if (ip.v === 4) {
      for (const c of this.v4) if (((ip.n & c.mask) >>> 0) === c.net) return true;
      return false;
    }
    for (const c of this.v6) {
      if (
        ((ip.w[0] & c.mask[0]) >>> 0) === c.net[0] &&
        ((ip.w[1] & c.mask[1]) >>> 0) === c.net[1] &&
        ((ip.w[2] & c.mask[2]) >>> 0) === c.net[2] &&
        ((ip.w[3] & c.mask[3]) >>> 0) === c.net[3]
      ) {
        return true;
      }
    }
    return false;
  }

  hasText(address: string): boolean {
    const ip = parseIp(address);
    return ip !== null && this.has(ip);
  }
}
