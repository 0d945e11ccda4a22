/** The entry point node:cluster runs in each worker process of `portcullis start --workers N` (workers.ts). */
import { runWorker } from "./worker.js";

runWorker().catch((err: unknown) => {
  process.stderr.write(`INTERNAL: worker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
