/**
 * Support for the client-compatibility tests: the whole demo (exchange, gateway, admin API) on
 * loopback ports in this process, and keys created for it. Real third-party clients from npm then
 * talk to `stack.gateway` as they would to the venue.
 */
import { type DemoStack, startDemoStack } from "@portcullis/demo-exchange";
import { silentLogger } from "../../src/log/logger.js";

export async function startCompatStack(): Promise<DemoStack> {
  return startDemoStack({ port: 0, adminPort: 0, upstreamPort: 0, logger: silentLogger(), serverTiming: false });
}

/** host:port of a stack URL (what a client library puts in its URLs). */
export function hostOf(url: string): string {
  return new URL(url).host;
}
