import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ClientAddressResolver } from "../../src/net/client-address.js";
import { CidrError, CidrSet, addressGroup, formatIp, normalizeIp, parseCidr, parseIp } from "../../src/net/ip.js";

describe("parseIp / formatIp", () => {
  it.each([
    ["192.0.2.1", "192.0.2.1"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"],
    ["::1", "::1"],
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["::ffff:192.0.2.1", "192.0.2.1"],
    ["::ffff:c000:0201", "192.0.2.1"],
    ["fe80::1%eth0", "fe80::1"],
    ["::", "::"],
    ["1::", "1::"],
  ])("%s -> %s", (input, canonical) => {
    expect(normalizeIp(input)).toBe(canonical);
  });

  it.each(["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", "1..2.3", "::1::", "12345::", "g::1", "1:2:3:4:5:6:7:8:9", "localhost"])(
    "rejects %j",
    (input) => {
      expect(parseIp(input)).toBeNull();
    },
  );

  it("round-trips every IPv4 and IPv6 address", () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        expect(normalizeIp(ip)).toBe(ip);
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        const parsed = parseIp(ip);
        expect(parsed).not.toBeNull();
        if (parsed === null) return;
        const again = parseIp(formatIp(parsed));
        expect(again).toEqual(parsed);
      }),
    );
  });
});

describe("CIDR sets", () => {
  it("matches IPv4 and IPv6 blocks, and IPv4-mapped IPv6 peers as IPv4", () => {
    const set = new CidrSet(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]);
    expect(set.hasText("10.255.0.1")).toBe(true);
    expect(set.hasText("11.0.0.1")).toBe(false);
    expect(set.hasText("192.0.2.7")).toBe(true);
    expect(set.hasText("192.0.2.8")).toBe(false);
    expect(set.hasText("::ffff:10.1.2.3")).toBe(true);
    expect(set.hasText("2001:db8:ffff::1")).toBe(true);
    expect(set.hasText("2001:db9::1")).toBe(false);
    expect(set.hasText("not an ip")).toBe(false);
  });

  it("canonicalises blocks (host bits cleared)", () => {
    expect(parseCidr("10.1.2.3/8").canonical).toBe("10.0.0.0/8");
    expect(parseCidr("2001:db8::1/32").canonical).toBe("2001:db8::/32");
    expect(parseCidr("::ffff:10.0.0.0/104").canonical).toBe("10.0.0.0/8");
    expect(parseCidr("0.0.0.0/0").canonical).toBe("0.0.0.0/0");
  });

  it.each(["10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/08", "2001:db8::/129", "fe80::1%eth0/64", "nope/8", "10.0.0.0/"])("refuses %j", (bad) => {
    expect(() => parseCidr(bad)).toThrow(CidrError);
  });

  it("agrees with a reference implementation on random IPv4 blocks", () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), fc.ipV4(), (net, bits, probe) => {
        const toInt = (s: string): number => s.split(".").reduce((a, o) => a * 256 + Number(o), 0);
        const block = 2 ** (32 - bits);
        const expected = Math.floor(toInt(net) / block) === Math.floor(toInt(probe) / block);
        expect(new CidrSet([`${net}/${bits}`]).hasText(probe)).toBe(expected);
      }),
    );
  });
});

describe("client address (stage 1)", () => {
  it("uses the socket peer and ignores X-Forwarded-For from an untrusted peer", () => {
    const resolver = new ClientAddressResolver(["10.0.0.0/8"]);
    expect(resolver.resolve("203.0.113.9", "1.2.3.4")?.text).toBe("203.0.113.9");
    expect(new ClientAddressResolver([]).resolve("203.0.113.9", "1.2.3.4")?.text).toBe("203.0.113.9");
  });

  it("walks X-Forwarded-For from the right past trusted proxies", () => {
    const resolver = new ClientAddressResolver(["10.0.0.0/8"]);
    expect(resolver.resolve("10.0.0.1", "198.51.100.7")?.text).toBe("198.51.100.7");
    expect(resolver.resolve("10.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.2")?.text).toBe("198.51.100.7");
    // Everything trusted: the leftmost address is the client.
    expect(resolver.resolve("10.0.0.1", "10.0.0.3, 10.0.0.2")?.text).toBe("10.0.0.3");
    // A garbled hop stops the walk at the last trusted address.
    expect(resolver.resolve("10.0.0.1", "198.51.100.7, garbage")?.text).toBe("10.0.0.1");
    expect(resolver.resolve("::ffff:10.0.0.1", ["198.51.100.7"])?.text).toBe("198.51.100.7");
    expect(resolver.resolve("10.0.0.1", undefined)?.text).toBe("10.0.0.1");
  });

  it("refuses an unusable socket address", () => {
    expect(new ClientAddressResolver([]).resolve(undefined, undefined)).toBeNull();
  });
});

describe("address groups (what per-address limits, bans and blocks count)", () => {
  const group = (text: string, prefix = 64): string => {
    const ip = parseIp(text);
    if (ip === null) throw new Error(`bad test address ${text}`);
    return addressGroup(ip, prefix);
  };

  it("an IPv4 address is itself, an IPv4-mapped IPv6 address the same IPv4 address", () => {
    expect(group("198.51.100.9")).toBe("198.51.100.9");
    expect(group("::ffff:198.51.100.9")).toBe("198.51.100.9");
    expect(group("::ffff:c633:6409", 48)).toBe("198.51.100.9");
  });

  it("an IPv6 address is its prefix: one /64 is one group, the next /64 another", () => {
    expect(group("2001:db8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(group("2001:db8:1:2:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(group("2001:db8:1:3::1")).toBe("2001:db8:1:3::/64");
    expect(group("2001:db8:1:2:3::1", 48)).toBe("2001:db8:1::/48");
    expect(group("2001:db8:1:2::1", 56)).toBe("2001:db8:1::/56");
    expect(group("2001:db8:1:2ff::1", 56)).toBe("2001:db8:1:200::/56");
    expect(group("2001:db8:1:2::1", 128)).toBe("2001:db8:1:2::1");
  });

  it("the resolver groups by its prefix and keeps the exact address for allowlists and logs", () => {
    const a = new ClientAddressResolver([]).resolve("2001:db8:1:2::7", undefined);
    expect(a).toMatchObject({ text: "2001:db8:1:2::7", group: "2001:db8:1:2::/64" });
    expect(new ClientAddressResolver([], 128).resolve("2001:db8:1:2::7", undefined)?.group).toBe("2001:db8:1:2::7");
    expect(new ClientAddressResolver([], 32).resolve("::ffff:192.0.2.1", undefined)).toMatchObject({ text: "192.0.2.1", group: "192.0.2.1" });
    for (const bad of [31, 129, 64.5, Number.NaN]) expect(() => new ClientAddressResolver([], bad)).toThrow(TypeError);
  });
});
