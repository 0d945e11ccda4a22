/**
 * A private nginx (Debian's /usr/sbin/nginx) running docs/deploy/nginx.conf itself, with only its
 * three addresses replaced: the authorizer's, the venue's, and the port nginx listens on. Its
 * prefix, pid, error log and temporary paths are in a temporary directory; it is stopped by the
 * process id it was started with.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const NGINX = "/usr/sbin/nginx";
export const NGINX_CONF = new URL("../../../../docs/deploy/nginx.conf", import.meta.url);
/** The auth_request configuration (body-less requests only). */
export const NGINX_AUTH_REQUEST_CONF = new URL("../../../../docs/deploy/nginx-auth-request.conf", import.meta.url);

/** Whether the tests that need nginx run here: always under CI (absent, they fail), else when it is installed. */
export function nginxAvailable(): boolean {
  if (existsSync(NGINX)) return true;
  if (process.env.CI === "true") return true;
  console.warn(`\n*** SKIPPING the nginx authorizer tests: ${NGINX} is not installed (apt-get install nginx). Under CI=true they fail instead. ***\n`);
  return false;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      resolve(false);
    });
  });
}

export interface RunningNginx {
  /** host:port clients use. */
  readonly host: string;
  readonly errorLog: () => string;
  stop(): Promise<void>;
}

/** The shipped config with its addresses replaced (and nothing else). */
export function templated(authorizer: string, venue: string, port: number, conf: URL = NGINX_CONF): string {
  const text = readFileSync(conf, "utf8");
  for (const token of ["server 127.0.0.1:8081;", "server 127.0.0.1:9000;", "listen 8080;"]) {
    if (text.split(token).length !== 2) throw new Error(`${conf.pathname} no longer has "${token}" exactly once`);
  }
  return text.replace("server 127.0.0.1:8081;", `server ${authorizer};`).replace("server 127.0.0.1:9000;", `server ${venue};`).replace("listen 8080;", `listen 127.0.0.1:${port};`);
}

export async function startNginx(authorizer: string, venue: string, conf: URL = NGINX_CONF): Promise<RunningNginx> {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} is not installed: CI installs the Debian package nginx (.ci/run)`);
  const dir = mkdtempSync(join(tmpdir(), "portcullis-nginx-"));
  const port = await freePort();
  writeFileSync(join(dir, "portcullis.conf"), templated(authorizer, venue, port, conf));
  writeFileSync(
    join(dir, "nginx.conf"),
    [
      `error_log ${dir}/error.log warn;`,
      "worker_processes 1;",
      "events { worker_connections 256; }",
      "http {",
      "  access_log off;",
      ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((p) => `  ${p}_temp_path ${dir}/${p};`),
      `  include ${dir}/portcullis.conf;`,
      "}",
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn(NGINX, ["-p", dir, "-e", join(dir, "error.log"), "-c", join(dir, "nginx.conf"), "-g", `daemon off; pid ${dir}/nginx.pid;`], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const state = { exited: false };
  child.once("exit", () => (state.exited = true));
  // Wait for its listener (a real process starting: bounded polling, not a sleep standing in for a clock).
  for (let i = 0; i < 200 && !state.exited; i++) {
    if (await accepts(port)) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  if (state.exited || !(await accepts(port))) {
    child.kill("SIGKILL");
    throw new Error(`nginx did not start: ${stderr}`);
  }
  const errorLog = (): string => (existsSync(join(dir, "error.log")) ? readFileSync(join(dir, "error.log"), "utf8") : "");
  return {
    host: `127.0.0.1:${port}`,
    errorLog,
    async stop() {
      if (!state.exited) {
        const gone = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGQUIT");
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
