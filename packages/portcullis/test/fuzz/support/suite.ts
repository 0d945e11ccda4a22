/**
 * One fuzz file: a gateway, one property per scheme (each its share of PORTCULLIS_FUZZ_RUNS), run
 * side by side, a slice over real sockets, and a last test that the count was reached, so the
 * number of generated requests cannot silently drop. Two files split the schemes (vitest runs
 * them on separate workers when it has more than one).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SchemeName } from "./model.js";
import { type FuzzGateway, FUZZ_RUNS, fuzzOverSockets, fuzzScheme, runsPerScheme, scanLogs, startFuzzGateway } from "./harness.js";

export function fuzzSuite(title: string, schemes: readonly SchemeName[]): void {
  describe(title, () => {
    let gateway: FuzzGateway | undefined;
    const started = Date.now();
    const cpu = process.cpuUsage();
    const h = (): FuzzGateway => {
      if (gateway === undefined) throw new Error("the fuzz gateway did not start");
      return gateway;
    };
    const share = runsPerScheme();
    beforeAll(async () => {
      gateway = await startFuzzGateway();
    });
    afterAll(async () => {
      await gateway?.close();
    });

    for (const scheme of schemes) {
      // The schemes run side by side (one case at a time each), so the gateway, the upstream and
      // the audit log's writes overlap as they would under load.
      it.concurrent(`${scheme}: ${share} generated requests, every oracle holding`, { timeout: 600_000 }, async () => {
        const before = h().count;
        await fuzzScheme(h(), scheme, share);
        expect(h().count - before).toBeGreaterThanOrEqual(share);
      });
    }

    // One in fifty again over real sockets (node's parser, not light-my-request, reads them; a
    // connection each costs about three times an in-process request).
    const overSockets = Math.max(1, Math.ceil((share * schemes.length) / 50));
    it.concurrent(`${overSockets} generated requests over real sockets, every oracle holding`, { timeout: 600_000 }, async () => {
      const g = h();
      const port = (await g.t.gateway.listen(0)).port;
      const before = g.count;
      await fuzzOverSockets(g, schemes, overSockets, port);
      expect(g.count - before).toBeGreaterThanOrEqual(overSockets);
    });

    it("ran its share of the suite's generated requests", () => {
      const seconds = (Date.now() - started) / 1000;
      const used = process.cpuUsage(cpu);
      const cpuSeconds = (used.user + used.system) / 1e6;
      console.log(`[fuzz] ${title}: ${h().count} generated requests (${schemes.length} schemes × ${share} in process, ${overSockets} over sockets; PORTCULLIS_FUZZ_RUNS=${FUZZ_RUNS}) in ${seconds.toFixed(1)} s (${cpuSeconds.toFixed(1)} s CPU)`);
      expect(h().count).toBeGreaterThanOrEqual(share * schemes.length + overSockets);
      expect(scanLogs(h())).toEqual([]);
      // The search saw the gateway's decisions (a refusal is logged), so it cannot pass by seeing nothing.
      expect(h().logLinesScanned).toBeGreaterThan(h().count / 10);
      expect(h().t.upstream.requests).toEqual([]);
    });
  });
}
