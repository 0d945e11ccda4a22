/**
 * Fuzzing whole HTTP requests through the gateway (support/harness.ts has the oracles): the venue
 * dialects signed in headers and parameters: Binance (query and form body), Bybit, OKX, Kraken.
 */
import { fuzzSuite } from "./support/suite.js";

fuzzSuite("fuzz: Binance, Bybit, OKX, Kraken", ["binance-query", "binance-body", "bybit", "okx", "kraken"]);
