import { type ChildProcessWithoutNullStreams, execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../../bin/portcullis.js", import.meta.url));

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real `portcullis` command in its own process. */
export function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts a long-running command and resolves with its first stdout line (or a matching line). */
export function startCli(
  args: readonly string[],
  match: (line: string) => boolean = () => true,
): Promise<{ child: ChildProcessWithoutNullStreams; line: string; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: "pipe" });
  return new Promise((resolve, reject) => {
    let buffer = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no output from portcullis ${args.join(" ")}; stderr: ${stderr}`));
    }, 20_000);
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const onData = (d: Buffer): void => {
      buffer += d.toString();
      for (const line of buffer.split("\n").slice(0, -1)) {
        if (!match(line)) continue;
        clearTimeout(timer);
        child.stdout.off("data", onData);
        resolve({
          child,
          line,
          stop: () =>
            new Promise((res) => {
              if (child.exitCode !== null) {
                res(child.exitCode);
                return;
              }
              child.once("exit", (code) => { res(code); });
              child.kill("SIGTERM");
            }),
        });
        return;
      }
    };
    child.stdout.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`portcullis ${args.join(" ")} exited with ${String(code)}; stderr: ${stderr}`));
    });
  });
}
