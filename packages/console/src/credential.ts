/**
 * The credential file (docs/console.md): `{ "keyId", "algorithm": "ed25519", "privateKey": PKCS#8 PEM }`,
 * written by the demo for its operator and offered as a download when the console creates an
 * Ed25519 key. Parsed strictly: anything else is refused before WebCrypto sees it.
 */
export interface Credential {
  readonly keyId: string;
  readonly algorithm: "ed25519";
  readonly privateKey: string;
}

const KEY_ID_RE = /^[A-Za-z0-9_.:-]{1,200}$/;

/** The credential in `text`, or an Error saying what is wrong with it (never echoing the key). */
export function parseCredential(text: string): Credential {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error("the credential file is not JSON");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error("the credential file must be a JSON object");
  const o = raw as Record<string, unknown>;
  if (typeof o.keyId !== "string" || !KEY_ID_RE.test(o.keyId)) throw new Error("the credential file has no valid keyId");
  if (o.algorithm !== "ed25519") throw new Error('the credential file\'s algorithm must be "ed25519"');
  if (typeof o.privateKey !== "string" || !o.privateKey.includes("-----BEGIN PRIVATE KEY-----")) {
    throw new Error("the credential file's privateKey must be a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)");
  }
  return { keyId: o.keyId, algorithm: "ed25519", privateKey: o.privateKey };
}

/** The file's text for a key created here. */
export function credentialText(keyId: string, privateKeyPem: string): string {
  return `${JSON.stringify({ keyId, algorithm: "ed25519", privateKey: privateKeyPem }, null, 2)}\n`;
}

/** Offers `content` as a file download (an object URL, revoked once clicked: nothing stays behind). */
export function download(filename: string, content: Blob | string, type = "application/json"): void {
  const blob = typeof content === "string" ? new Blob([content], { type }) : content;
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => {
    URL.revokeObjectURL(url);
  }, 0);
}
