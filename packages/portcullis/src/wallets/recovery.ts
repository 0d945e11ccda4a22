import { type Hex, type TypedDataDefinition, getAddress, isHex, recoverMessageAddress, recoverTypedDataAddress } from "viem";

/**
 * Signer recovery for wallet messages (docs/wallets.md), with viem: EIP-191 personal messages
 * (SIWE) and EIP-712 typed data. Never throws for bad input: a signature that is not 65 bytes of
 * hex, or that recovers no point, is `null`.
 */

/** A 65-byte r || s || v signature as 0x hex (v 27/28 or 0/1), or null. */
function signatureHex(signature: unknown): Hex | null {
  if (typeof signature !== "string" || !isHex(signature, { strict: true }) || signature.length !== 132) return null;
  return signature;
}

/** The EIP-55 address that signed `message` (EIP-191 `personal_sign`), or null. */
export async function recoverPersonalSigner(message: string, signature: unknown): Promise<string | null> {
  const sig = signatureHex(signature);
  if (sig === null) return null;
  try {
    return getAddress(await recoverMessageAddress({ message, signature: sig }));
  } catch {
    return null;
  }
}

/** The EIP-55 address that signed `typedData` (EIP-712 `eth_signTypedData_v4`), or null. */
export async function recoverTypedSigner(typedData: TypedDataDefinition, signature: unknown): Promise<string | null> {
  const sig = signatureHex(signature);
  if (sig === null) return null;
  try {
    return getAddress(await recoverTypedDataAddress({ ...typedData, signature: sig } as Parameters<typeof recoverTypedDataAddress>[0]));
  } catch {
    return null;
  }
}
