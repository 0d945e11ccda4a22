import { pino, type DestinationStream, type Logger, type LoggerOptions } from "pino";

export type { Logger };

/**
 * Structured logs (pino, JSON lines). Portcullis never passes a secret to the logger, and the
 * redaction below is the second line of defence: any field with a credential-like name is
 * replaced, wherever it appears one or two levels down.
 */
const SENSITIVE = ["secret", "privateKey", "private_key", "password", "passphrase", "signature", "authorization", "token", "secretEnvelope", "identitySecret"];

export const REDACT_PATHS = [
  ...SENSITIVE,
  ...SENSITIVE.map((k) => `*.${k}`),
  ...SENSITIVE.map((k) => `*.*.${k}`),
  ...["signature-input", "x-mbx-apikey", "api-sign", "ok-access-sign", "ok-access-passphrase", "x-bapi-sign", "portcullis-identity"].flatMap(
    (h) => [`headers["${h}"]`, `*.headers["${h}"]`],
  ),
];

export interface LoggerSettings {
  readonly level?: string;
  readonly name?: string;
}

export function createLogger(settings: LoggerSettings = {}, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? "info",
    name: settings.name ?? "portcullis",
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}

/** A logger that discards everything (tests, the CLI's quiet paths). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
