import { type ConfigSource, parseConfigText } from "../config/config.js";
import { PortcullisError, isOperatorError } from "../errors/catalogue.js";
import { type Logger, createLogger } from "../log/logger.js";
import { type RunningPortcullis, startPortcullis, urlOf } from "./runtime.js";
import { type PrimaryMessage, type WorkerMessage, onHangup } from "./workers.js";

/**
 * One worker process of `portcullis start --workers N` (workers.ts): asks the primary for the
 * config file's text, starts the configured Portcullis on the shared ports, says it is ready (or
 * why it could not start, then exits 1), and drains on the primary's word or on SIGTERM / SIGINT
 * (a terminal's Ctrl-C reaches every process of the group: the first signal drains, later ones
 * change nothing). If the primary goes away, node:cluster ends the worker.
 */
export async function runWorker(): Promise<void> {
  // Before anything else: a SIGHUP passed on by the primary while this worker starts must not end it.
  const hangup = onHangup();
  const send = (message: WorkerMessage): Promise<void> =>
    new Promise((resolve) => {
      if (process.send === undefined) resolve();
      else process.send(message, undefined, {}, () => { resolve(); });
    });
  const source = await new Promise<ConfigSource>((resolve) => {
    const onMessage = (m: unknown): void => {
      const message = m as Partial<PrimaryMessage> | null;
      if (typeof message !== "object" || message === null || message.portcullis !== "config") return;
      process.off("message", onMessage);
      const { text, baseDir, file } = message as ConfigSource;
      resolve({ text, baseDir, file });
    };
    process.on("message", onMessage);
    void send({ portcullis: "config?" });
  });
  let running: RunningPortcullis;
  let logger: Logger;
  try {
    const config = parseConfigText(source.text, source.baseDir, source.file);
    logger = createLogger({ level: config.log.level }).child({ worker: Number(process.env.PORTCULLIS_WORKER ?? "0") });
    running = await startPortcullis(config, logger);
  } catch (err) {
    const code = err instanceof PortcullisError || isOperatorError(err) ? err.code : "INTERNAL";
    await send({ portcullis: "failed", code, message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  }
  let draining = false;
  const drain = (): void => {
    if (draining) return;
    draining = true;
    running.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "worker shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", drain);
  process.on("SIGTERM", drain);
  // The primary passes SIGHUP on: TLS certificates and keys read again (docs/tls.md).
  hangup.ready(() => {
    running.reloadTls();
  });
  process.on("message", (m: unknown) => {
    if (typeof m === "object" && m !== null && (m as Partial<PrimaryMessage>).portcullis === "drain") drain();
  });
  logger.info({ gateway: urlOf(running.gatewayAddress, running.tls.gateway === null ? "http" : "https") }, "worker serving");
  await send({ portcullis: "ready", gateway: urlOf(running.gatewayAddress, running.tls.gateway === null ? "http" : "https"), admin: running.adminAddress === null ? null : urlOf(running.adminAddress, running.tls.admin === null ? "http" : "https") });
}
