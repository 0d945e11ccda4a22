import { execFileSync } from "node:child_process";

/**
 * Tests that spawn the `portcullis` command run the built JavaScript, exactly as a user would;
 * build first (incremental, so this is quick when nothing changed).
 */
export default function setup(): void {
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-b", "packages/client", "packages/portcullis", "packages/demo-exchange"], { stdio: "inherit" });
}
