/**
 * fast-check generators for the fuzz suite: valid base requests per scheme, and the mutations of
 * model.ts with values chosen to hit parsers where they are weakest (RFC 8941 structured-field
 * edge cases, percent-encoding, unicode, 64 KiB and truncated values).
 */
import fc from "fast-check";
import { ALL_CREDENTIAL_HEADERS, type BaseRequest, type FuzzCase, type Mutation, SCHEMES, type SchemeName } from "./model.js";

const KIB64 = 64 * 1024;

/** A string as node:http would hand it over: UTF-8 bytes read as latin1, one character per byte. */
const asLatin1 = (s: string): string => Buffer.from(s, "utf8").toString("latin1");

/**
 * Strings built from arrays of code points: fast-check's `string` arbitraries recompute their
 * bias slices on every value, which made generation the suite's largest cost.
 */
function codePoints(min: number, max: number, maxLength: number): fc.Arbitrary<string> {
  return fc.array(fc.integer({ min, max }), { maxLength }).map((cs) => String.fromCodePoint(...cs.map((c) => (c >= 0xd800 && c <= 0xdfff ? 0xfffd : c))));
}

/** Any code point (no lone surrogates). */
const unicode = codePoints(0, 0x10ffff, 12);
/** Printable ASCII. */
const printable = codePoints(0x20, 0x7e, 24);

/** Header values: printable, unicode (as node delivers it), separators, and now and then 64 KiB. */
export const headerValue: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: printable },
  { weight: 3, arbitrary: unicode.map(asLatin1) },
  { weight: 2, arbitrary: fc.constantFrom(",", ";", "=", '"', "\\", ":", "()", "%00", "%zz", "\t", "?1", "*", "\u00ff\u00fe") },
  { weight: 1, arbitrary: fc.constantFrom("A".repeat(KIB64), "%".repeat(4096), ",".repeat(KIB64 / 8)) },
);

function encodeSafe(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return "x";
  }
}

const paramKey = fc.stringMatching(/^[a-z]{1,8}$/).filter((k) => k !== "nonce");
const encodedValue = fc.oneof(unicode.map(encodeSafe), fc.constantFrom("", "0", "-1", "1e308", "BTCUSDT", "%2F", "true"));
const jsonKey = fc.oneof(
  { weight: 3, arbitrary: paramKey },
  { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "valueOf") },
  { weight: 1, arbitrary: unicode.filter((k) => k !== "nonce") },
);

const ipV6 = fc.ipV6().map((a) => new URL(`http://[${a}]/`).hostname.slice(1, -1)).filter((a) => !a.includes(".") && !a.startsWith("::ffff:"));
export const remoteAddress = fc.oneof(fc.ipV4(), ipV6);

export function baseRequest(scheme: SchemeName): fc.Arbitrary<BaseRequest> {
  const formFields = scheme === "binance-body" || scheme === "kraken";
  return fc.record({
    route: fc.nat({ max: 7 }),
    query: fc.array(fc.tuple(paramKey, encodedValue), { maxLength: 4 }),
    fields: fc.array(fc.tuple(formFields ? paramKey : jsonKey, unicode), { maxLength: 4 }),
    json: fc.boolean(),
    headers: fc.array(
      fc.oneof(
        fc.tuple(fc.stringMatching(/^x-fz-[a-z0-9]{1,8}$/), headerValue),
        fc.tuple(fc.constantFrom("User-Agent", "Accept", "Accept-Language", "Cache-Control"), printable),
      ),
      { maxLength: 3 },
    ),
    skewMs: scheme === "kraken" || scheme === "public" ? fc.constant(0) : fc.integer({ min: -2000, max: 500 }),
    remoteAddress,
  });
}

/** The names of the client-address, client-certificate, identity, override and rewrite family, some spelt otherwise. */
const FAMILY = [
  "portcullis-account",
  "portcullis-key-id",
  "portcullis-identity",
  "portcullis-scopes",
  "portcullis-client-ip",
  "portcullis-request-id",
  "portcullis-timestamp",
  "portcullis-sub-account",
  "portcullis-content-sha256",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-proto",
  "x-forwarded-port",
  "x-forwarded-prefix",
  "forwarded",
  "x-real-ip",
  "true-client-ip",
  "x-client-ip",
  "client-ip",
  "cf-connecting-ip",
  "fastly-client-ip",
  "x-cluster-client-ip",
  "x-originating-ip",
  "x-remote-ip",
  "x-remote-addr",
  "x-http-method-override",
  "x-http-method",
  "x-method-override",
  "x-original-method",
  "x-original-url",
  "x-rewrite-url",
  "x-original-uri",
  "x-envoy-original-path",
  "x-envoy-external-address",
  "x-host",
  "x-original-host",
  "client-cert",
  "client-cert-chain",
  "x-client-cert",
  "x-ssl-client-cert",
  "x-ssl-client-verify",
  "ssl-client-cert",
  "x-ssl-cert",
  "x-arr-clientcert",
  "x-amzn-mtls-clientcert",
  "x-forwarded-client-cert",
] as const;

const spelling = fc.constantFrom("as-is", "upper", "title", "underscore", "Underscore");
const familyName = fc.tuple(fc.constantFrom(...FAMILY), spelling).map(([n, s]) => {
  switch (s) {
    case "upper":
      return n.toUpperCase();
    case "title":
      return n.replace(/(^|-)([a-z])/g, (_, d: string, c: string) => d + c.toUpperCase());
    case "underscore":
      return n.replaceAll("-", "_");
    case "Underscore":
      return n.replaceAll("-", "_").toUpperCase();
    default:
      return n;
  }
});

/** A marker no gateway would write: the oracle looks for it in every forwarded header. */
const marker = fc.tuple(fc.stringMatching(/^[a-z0-9]{10}$/), fc.constantFrom("", ", 10.0.0.1", ";for=10.0.0.1", " /admin", "\u00e9")).map(([m, tail]) => `fzm${m}${tail}`);

const neutral: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("add" as const), name: fc.stringMatching(/^x-fz-[a-z0-9]{1,8}$/), value: headerValue }),
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("inject" as const), name: familyName, value: marker }) },
  fc.constant({ kind: "connection" as const }),
  fc.record({ kind: fc.constant("case" as const), pick: fc.nat(), bits: fc.nat() }),
  fc.constant({ kind: "expect" as const }),
);

// --- structured fields -----------------------------------------------------------------------

const sfKey = fc.oneof(fc.stringMatching(/^[a-z*][a-z0-9_.*-]{0,8}$/), fc.constantFrom("sig1", "SIG1", "sig-1", "1sig", "", "keyid", "created", "alg", "nonce"));
const sfBare = fc.oneof(
  fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }).map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => d.toFixed(3)),
  printable.map((s) => JSON.stringify(s)),
  fc.stringMatching(/^[A-Za-z*][A-Za-z0-9:/!#$%&'*+.^_`|~-]{0,10}$/),
  fc.uint8Array({ maxLength: 40 }).map((b) => `:${Buffer.from(b).toString("base64")}:`),
  fc.constantFrom("?0", "?1", "?2", ":not base64!:", ":AAA:", ":====:", ":" + "A".repeat(KIB64) + ":", "1".repeat(20), "-0", "1.", "1.1234", '"\\x"', '"\u00e9"', "%", "@"),
);
const sfParams = fc.array(fc.tuple(sfKey, fc.option(sfBare, { nil: undefined })), { maxLength: 4 }).map((ps) => ps.map(([k, v]) => (v === undefined ? `;${k}` : `;${k}=${v}`)).join(""));
const sfComponent = fc.oneof(
  fc.constantFrom('"@method"', '"@authority"', '"@path"', '"@query"', '"@target-uri"', '"@request-target"', '"@status"', '"@signature-params"', '"content-digest"', '"@query-param";name="a"', '"signature"', '"@method";req', '"content-digest";sf', '"content-digest";bs', '"content-digest";key="sha-256"'),
  sfBare,
);
const sfInner = fc.tuple(fc.array(fc.tuple(sfComponent, sfParams), { maxLength: 6 }), sfParams).map(([items, ps]) => `(${items.map(([c, p]) => c + p).join(" ")})${ps}`);
const sfMember = fc.tuple(sfKey, fc.oneof(sfBare.chain((b) => sfParams.map((p) => b + p)), sfInner)).map(([k, v]) => `${k}=${v}`);
/** A random RFC 8941 dictionary, well or badly formed. */
const sfDictionary = fc.array(sfMember, { minLength: 1, maxLength: 4 }).map((ms) => ms.join(", "));

/** Values for Signature / Signature-Input / Content-Digest: structured-field edge cases. */
const sfEdge = fc.constantFrom(
  "",
  ",",
  "sig1",
  "sig1=",
  "sig1=?1",
  "sig1=()",
  "sig1=();created=1",
  "sig1=(((\"@method\")))",
  'sig1=("@method" "@method" "@authority" "@path" "@query");created=1;keyid="x";nonce="aaaaaaaa"',
  'sig1=("@method" "@authority" "@path" "@query");created=99999999999999999999;keyid="k";nonce="aaaaaaaa"',
  'sig1=("@method" "@authority" "@path" "@query");created=-1;keyid="k";nonce="aaaaaaaa"',
  'sig1=("@method" "@authority" "@path" "@query");created=1.5;keyid="k";nonce="aaaaaaaa"',
  'sig1=("@method" "@authority" "@path" "@query");created=1;keyid=:AAAA:;nonce="aaaaaaaa"',
  'sig1=("@method" "@authority" "@path" "@query");created=1;keyid="k";nonce="aaaaaaaa";alg="none"',
  'sig1=("@method" "@authority" "@path" "@query");created=1;keyid="k";keyid="k2";nonce="aaaaaaaa"',
  "sig1=:AAAA:, sig1=:BBBB:",
  "sig1=:" + "A".repeat(KIB64) + ":",
  "sig1=:%%%%:",
  "sig1=:AA==:;x=1",
  "sig1=123456789012345678",
  'sig1="str"',
  "sig1=tok*en",
  Array.from({ length: 1000 }, (_, i) => `s${i}=:AAAA:`).join(", "),
  "sha-256=:AAAA:",
  "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
  "sha-512=:" + "A".repeat(86) + "==:",
  "sha-256=:not-base64:",
  "sha-256=?1",
  "sha-256=(:AAAA:)",
  "sha-256=:AAAA:;sf, sha-256=:BBBB:",
  "unixsum=1, md5=:AAAA:",
);

/** Replacement values for a credential header. */
const credentialValue = fc.oneof(
  { weight: 3, arbitrary: sfEdge },
  { weight: 3, arbitrary: sfDictionary },
  { weight: 2, arbitrary: headerValue },
  { weight: 1, arbitrary: fc.constantFrom("0", "-1", "99999999999999999999", "1e3", "0x10", "Bearer", "Bearer ", "Bearer a.b.c", "Bearer ....", "pck_test_v1_" + "0".repeat(28), "2026-11-22T12:00:00.000Z", "2026-13-45T25:61:61.999Z") },
);

const insertText = fc.oneof(fc.constantFrom(" ", ",", ";", "\t", "=", ":", '"', "(", ")", ", sig2=:AAAA:", ";created=1", "%20", "\u00e9"), printable);

const significantMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("duplicate" as const), pick: fc.nat(), junk: fc.option(credentialValue, { nil: null }), before: fc.boolean() }),
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("signature" as const), at: fc.nat() }) },
  fc.record({ kind: fc.constant("truncate" as const), pick: fc.nat(), keep: fc.nat({ max: 200 }) }),
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("replace" as const), pick: fc.nat(), value: credentialValue }) },
  fc.record({ kind: fc.constant("insert" as const), pick: fc.nat(), at: fc.nat(), text: insertText }),
  fc.record({ kind: fc.constant("remove" as const), pick: fc.nat() }),
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("body" as const), op: fc.constantFrom("flip", "append", "truncate", "huge", "proto"), at: fc.nat(), text: unicode }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("query" as const),
      op: fc.constantFrom("reorder", "add", "drop", "encode", "raw"),
      at: fc.nat(),
      text: fc.oneof(printable.map((s) => s.replace(/[#\s]/g, "")), fc.constantFrom("%zz", "%", "a=%00", "a&&b", "=", "a=b=c", "%2F", "+", "a[b]=1", "signature=0", "timestamp=1", "__proto__=1")),
    }),
  },
  fc.record({ kind: fc.constant("path" as const), op: fc.constantFrom("encode", "slash", "double", "upper", "dot", "dotdot"), at: fc.nat() }),
  fc.record({ kind: fc.constant("method" as const), to: fc.constantFrom("GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS") }),
  fc.record({
    kind: fc.constant("host" as const),
    value: fc.constantFrom("evil.test", "gateway.test:8080", "GATEWAY.TEST", "gateway.test:80", "gateway.test.", "127.0.0.1", "[::1]", "gateway.test@evil.test", "gateway.test, evil.test", "", "A".repeat(KIB64)),
  }),
  fc.record({ kind: fc.constant("stale" as const), ms: fc.constantFrom(-200_000, -31_000, 60_000) }),
  fc.record({ kind: fc.constant("foreign" as const), name: fc.constantFrom(...ALL_CREDENTIAL_HEADERS), value: credentialValue }),
  fc.record({ kind: fc.constant("label" as const), input: fc.oneof(sfDictionary, fc.constant('sig2=("@method");created=1;keyid="k";nonce="aaaaaaaa"')), signature: fc.oneof(sfDictionary, fc.constant("sig2=:AAAA:")) }),
);

/** A case for `scheme`: a base request, one significant mutation (or none), neutral ones, and now and then chaos. */
export function fuzzCase(scheme: SchemeName): fc.Arbitrary<FuzzCase> {
  return fc.record({
    scheme: fc.constant(scheme),
    base: baseRequest(scheme),
    significant: fc.option(significantMutation, { nil: null, freq: 6 }),
    neutral: fc.array(neutral, { maxLength: 4 }),
    chaos: fc.oneof({ weight: 9, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(significantMutation, { minLength: 2, maxLength: 4 }) }),
  });
}

export const anyScheme = fc.constantFrom(...SCHEMES);
