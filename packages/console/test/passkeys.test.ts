/**
 * Why the console's passkey buttons are off (src/passkeys.ts `passkeyObstacle`): WebAuthn has no
 * relying party for an IP address, so a console opened by one says so and, when the address is
 * the loopback, links the same page at localhost (the origin the runtime derives). Outside a
 * browser (here: no window) WebAuthn is unavailable, which is the other reason.
 */
import { describe, expect, it } from "vitest";
import { passkeyObstacle } from "../src/passkeys.js";

const at = (hostname: string, port = "8081", protocol = "http:") => passkeyObstacle({ hostname, port, protocol, pathname: "/console/" });

describe("passkeyObstacle", () => {
  it("at a loopback IP address: the reason and the localhost URL (same scheme, port and path)", () => {
    expect(at("127.0.0.1")).toEqual({ reason: expect.stringContaining("IP address (127.0.0.1)") as unknown, localUrl: "http://localhost:8081/console/" });
    expect(at("127.0.0.2", "", "https:")?.localUrl).toBe("https://localhost/console/");
    expect(at("[::1]")?.localUrl).toBe("http://localhost:8081/console/");
  });

  it("at another IP address: the reason, no localhost URL (it would be another machine), admin.origin named", () => {
    for (const host of ["10.0.0.5", "[2001:db8::1]"]) {
      const o = at(host);
      expect(o?.localUrl).toBeNull();
      expect(o?.reason).toContain("admin.origin");
    }
  });

  it("at a name, only a missing WebAuthn stands in the way (none outside a browser)", () => {
    for (const host of ["localhost", "console.venue.example", "10.0.0.5.nip.io"]) {
      const o = at(host);
      expect(o?.localUrl).toBeNull();
      expect(o?.reason).toContain("secure context");
    }
  });
});
