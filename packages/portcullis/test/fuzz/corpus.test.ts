/**
 * The fuzz suite's regression corpus (corpus/*.json; corpus/README.md says how to add a case):
 * every entry replayed on every run with the same oracles as the generated requests. A `case` is
 * signed afresh with this run's keys and clock and then mutated as recorded; a raw `request` is
 * sent as it is. Requests go over a real socket to the listening gateway when the entry says
 * `"via": "socket"` (raw requests always do: a request without Host can only be sent that way).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CORPUS_DIR, type FuzzGateway, runCase, runRaw, startFuzzGateway } from "./support/harness.js";
import { type FuzzCase, SCHEMES, type WireRequest } from "./support/model.js";

interface CaseEntry {
  readonly description: string;
  readonly via?: "socket" | "inject";
  readonly case: FuzzCase;
}
interface RawEntry {
  readonly description: string;
  readonly request: Omit<WireRequest, "remoteAddress">;
  readonly expect: "forwarded" | "refused" | "either";
}
type Entry = CaseEntry | RawEntry;

/** Reads one corpus file, refusing one that is not a case or a raw request (so a typo cannot make an entry vacuous). */
function load(file: string): Entry {
  const raw = JSON.parse(readFileSync(join(CORPUS_DIR, file), "utf8")) as Record<string, unknown>;
  if (typeof raw.description !== "string" || raw.description === "") throw new TypeError(`${file}: no description`);
  if ("case" in raw) {
    const c = raw.case as Partial<FuzzCase>;
    if (!(SCHEMES as readonly string[]).includes(String(c.scheme)) || typeof c.base !== "object" || !Array.isArray(c.neutral) || !Array.isArray(c.chaos)) {
      throw new TypeError(`${file}: case needs scheme, base, significant, neutral and chaos`);
    }
    return raw as unknown as CaseEntry;
  }
  const r = raw.request as Partial<WireRequest> | undefined;
  if (r === undefined || typeof r.method !== "string" || typeof r.url !== "string" || !Array.isArray(r.headers) || typeof r.body !== "string") {
    throw new TypeError(`${file}: request needs method, url, headers (a list of [name, value]) and body`);
  }
  if (raw.expect !== "forwarded" && raw.expect !== "refused" && raw.expect !== "either") throw new TypeError(`${file}: expect must be forwarded, refused or either`);
  return raw as unknown as RawEntry;
}

const files = readdirSync(CORPUS_DIR)
  .filter((f) => f.endsWith(".json"))
  .sort();

let h: FuzzGateway | undefined;
let port = 0;
const gateway = (): FuzzGateway => {
  if (h === undefined) throw new Error("the fuzz gateway did not start");
  return h;
};

beforeAll(async () => {
  h = await startFuzzGateway();
  port = (await h.t.gateway.listen(0)).port;
});
afterAll(async () => {
  await h?.close();
});

describe("the fuzz corpus", () => {
  it("holds the hand-written cases and nothing unreadable", () => {
    expect(files.length).toBeGreaterThanOrEqual(10);
    for (const f of files) load(f);
  });

  for (const file of files) {
    const entry = load(file);
    it(`${file}: ${entry.description}`, async () => {
      const g = gateway();
      const before = g.count;
      if ("case" in entry) await runCase(g, entry.case, entry.via === "socket" ? { socketPort: port } : {});
      else await runRaw(g, { ...entry.request, remoteAddress: "127.0.0.1" }, entry.expect, port);
      expect(g.count).toBe(before + 1);
    });
  }

  it("left nothing at the upstream that no answer accounted for", () => {
    expect(gateway().t.upstream.requests).toEqual([]);
  });
});
