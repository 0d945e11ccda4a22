import type { TypedDataDefinition } from "viem";

/** PLACEHOLDER until the client package's wallet module lands: the EIP-712 Logon definition. */
export interface LogonMessage {
  readonly domain: string;
  readonly uri: string;
  readonly account: string;
  readonly nonce: string;
  readonly issuedAt: bigint;
  readonly expiresAt: bigint;
}

export function logonTypedData(chainId: number, message: LogonMessage): TypedDataDefinition {
  return {
    domain: { name: "Portcullis", version: "1", chainId },
    types: {
      Logon: [
        { name: "domain", type: "string" },
        { name: "uri", type: "string" },
        { name: "account", type: "string" },
        { name: "nonce", type: "string" },
        { name: "issuedAt", type: "uint64" },
        { name: "expiresAt", type: "uint64" },
      ],
    },
    primaryType: "Logon",
    message: { ...message },
  };
}
