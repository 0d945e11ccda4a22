/**
 * Fuzzing whole HTTP requests through the gateway (support/harness.ts has the oracles): the native
 * RFC 9421 schemes (HMAC, Ed25519), session credentials, Coinbase's JWTs and the public route.
 */
import { fuzzSuite } from "./support/suite.js";

fuzzSuite("fuzz: native, sessions, Coinbase, public", ["native-hmac", "native-ed25519", "session", "coinbase", "public"]);
