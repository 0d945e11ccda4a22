/** The error `client.json()` throws for a non-2xx answer, from the gateway or from the venue behind it. */

export class PortcullisApiError extends Error {
  override readonly name = "PortcullisApiError";
  /** HTTP status. */
  readonly status: number;
  /**
   * The body's `code`: a string for gateway refusals (`"SIGNATURE_INVALID"`, `"CREATED_TOO_OLD"`…),
   * a number for venue-shaped upstream errors (`-1121`), undefined when the body has none.
   */
  readonly code: string | number | undefined;
  /** The gateway's request id (body `requestId`, else the `portcullis-request-id` header). */
  readonly requestId: string | undefined;
  /** The parsed JSON body, or the raw text when it is not JSON. */
  readonly body: unknown;

  constructor(status: number, code: string | number | undefined, message: string, requestId: string | undefined, body: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.body = body;
  }
}

function field(body: unknown, name: string): unknown {
  return typeof body === "object" && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>)[name] : undefined;
}

/** Parses response text as JSON, or returns the text itself when it is not JSON. */
export function parseBody(text: string): unknown {
  if (text === "") return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The `code` a refusal body carries: a gateway string code or a venue numeric code. */
export function errorCode(body: unknown): string | number | undefined {
  const code = field(body, "code");
  return typeof code === "string" || (typeof code === "number" && Number.isFinite(code)) ? code : undefined;
}

/** Builds the error for a non-2xx response whose body text has already been read. */
export function apiError(response: Response, text: string): PortcullisApiError {
  const body = parseBody(text);
  const message = field(body, "message");
  const msg = field(body, "msg");
  const requestId = field(body, "requestId");
  const headerId = response.headers.get("portcullis-request-id");
  return new PortcullisApiError(
    response.status,
    errorCode(body),
    typeof message === "string" ? message : typeof msg === "string" ? msg : `HTTP ${response.status}${response.statusText === "" ? "" : ` ${response.statusText}`}`,
    typeof requestId === "string" ? requestId : (headerId ?? undefined),
    body,
  );
}
