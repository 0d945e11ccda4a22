/**
 * @portcullis/client: signs requests for a Portcullis gateway (RFC 9421 HTTP Message Signatures),
 * seals orders (HPKE), and makes and verifies wallet messages (EIP-712, EIP-4361). Node 20+ and
 * current browsers. `@portcullis/client/base` is the same without the wallet protocol, for a
 * program that wants neither it nor viem loaded (the gateway's command line).
 */
export * from "../base.js";
export * from "../wallet/index.js";
