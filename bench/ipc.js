/**
 * Talking to a benchmark's server processes (servers.js) over their IPC channel: `ask` sends a
 * request with a fresh `seq` and resolves with the answer carrying the same `seq` (rejecting on
 * `{ error }` or after `timeoutMs`); `processCpu` asks for the process's CPU time so far.
 */

/** Sends `message` with a fresh `seq`; resolves with the answer that carries it. */
export function ask(child, message, timeoutMs = 30_000) {
  const seq = Math.random();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off("message", onMessage);
      reject(new Error(`no answer to ${JSON.stringify(Object.keys(message))}`));
    }, timeoutMs);
    const onMessage = (m) => {
      if (m === null || typeof m !== "object" || m.seq !== seq) return;
      clearTimeout(timer);
      child.off("message", onMessage);
      if (m.error !== undefined) reject(new Error(m.error));
      else resolve(m);
    };
    child.on("message", onMessage);
    child.send({ ...message, seq });
  });
}

/** CPU time (user + system, µs) a servers.js process has used so far, and the requests it received. */
export function processCpu(child) {
  return new Promise((resolve) => {
    const onMessage = (m) => {
      if (m === null || typeof m !== "object" || !("cpu" in m)) return;
      child.off("message", onMessage);
      resolve({ cpu: m.cpu.user + m.cpu.system, requests: m.requests });
    };
    child.on("message", onMessage);
    child.send("cpu");
  });
}
