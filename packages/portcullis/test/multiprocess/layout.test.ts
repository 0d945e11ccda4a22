/**
 * Joining a host to a deployment on PostgreSQL (docs/production.md, "The multi-host layout"):
 * its data directory needs the deployment's keyring and identity secret before
 * `portcullis init --store` writes its store.json. Run as the real CLI on the shared PostgreSQL, in a
 * schema of its own.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkSecretsOpen, openDataDir } from "../../src/core/data-dir.js";
import { CustodyError } from "../../src/custody/errors.js";
import { KeyringFileProvider } from "../../src/custody/keyring.js";
import { SECRET_PURPOSE } from "../../src/custody/envelope.js";
import { runCli } from "../support/cli.js";
import { SHARED_POSTGRES_URL, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { IN_CI, loudSkip } from "../support/redis.js";
import { cli } from "./support.js";

const PG = await postgresReachable(SHARED_POSTGRES_URL);
if (!PG && !IN_CI) loudSkip("joining a host to a PostgreSQL deployment (test/multiprocess/layout)", `no PostgreSQL at ${SHARED_POSTGRES_URL}`);
const withPostgres = PG || IN_CI ? describe : describe.skip;

withPostgres("a second host's data directory on the deployment's PostgreSQL schema", () => {
  const schema = uniqueSchema("layout");
  const root = mkdtempSync(join(tmpdir(), "portcullis-layout-"));
  const first = join(root, "host1", "data");
  const second = join(root, "host2", "data");
  afterAll(async () => {
    rmSync(root, { recursive: true, force: true });
    await dropSchema(SHARED_POSTGRES_URL, schema);
  });

  it("is refused by init --store without the deployment's keyring (DATA_DIR_INVALID), and nothing is written", async () => {
    await cli(["init", "--data", first, "--store", SHARED_POSTGRES_URL, "--schema", schema, "--environment", "test", "--json"]);
    const res = await runCli(["init", "--data", second, "--store", SHARED_POSTGRES_URL, "--schema", schema, "--environment", "test", "--json"]);
    expect(res.code).toBe(1);
    const error = (JSON.parse(res.stderr) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe("DATA_DIR_INVALID");
    expect(error.message).toMatch(/^PostgreSQL postgres@127\.0\.0\.1:5432\/test, schema pctest_layout_[0-9a-f]+ is already initialised \(another data directory of this deployment\): copy that directory's keyring\.json and identity\.secret \(mode 0600\) into .*host2\/data first/);
    expect(existsSync(second)).toBe(false);
  });

  it("joins with the copied keyring and identity secret: a key made on either host opens on the other", async () => {
    mkdirSync(second, { recursive: true, mode: 0o700 });
    for (const name of ["keyring.json", "identity.secret"]) {
      copyFileSync(join(first, name), join(second, name));
      chmodSync(join(second, name), 0o600);
    }
    const joined = JSON.parse(await cli(["init", "--data", second, "--store", SHARED_POSTGRES_URL, "--schema", schema, "--environment", "test", "--json"])) as { created: string[] };
    // Only what the host did not have: store.json (and a starter config beside it).
    expect(joined.created).toContain(join(second, "store.json"));
    expect(joined.created).not.toContain(join(second, "keyring.json"));
    expect(joined.created).not.toContain(join(second, "identity.secret"));
    expect(readFileSync(join(second, "store.json"), "utf8")).toBe(readFileSync(join(first, "store.json"), "utf8"));

    const made = JSON.parse(await cli(["keys", "create", "--data", second, "--account", "acme", "--scopes", "read", "--json"])) as { id: string; secret: string };
    const data = await openDataDir(first);
    try {
      const row = await data.store.keys.get(made.id);
      if (row === undefined || row.secretEnvelope === null) throw new Error("the key made on host 2 is not in the store");
      expect((await data.envelope.decrypt(row.secretEnvelope, SECRET_PURPOSE, made.id)).toString("utf8")).toBe(made.secret);
    } finally {
      await data.close();
    }
    // And host 2 reads what host 1 made.
    const other = JSON.parse(await cli(["keys", "create", "--data", first, "--account", "acme", "--scopes", "read", "--json"])) as { id: string };
    expect(JSON.parse(await cli(["keys", "show", other.id, "--data", second, "--json"]))).toMatchObject({ id: other.id, status: "active" });
  });
  it("a host whose keyring is not the deployment's does not start: CUSTODY_DECRYPT_FAILED naming the fix", async () => {
    // The deployment's secrets exist (a gateway's first start makes its audit-checkpoint key).
    const data = await openDataDir(first);
    try {
      await checkSecretsOpen(data, first);
    } finally {
      await data.close();
    }
    const stranger = join(root, "host3", "data");
    mkdirSync(stranger, { recursive: true, mode: 0o700 });
    for (const name of ["identity.secret", "store.json"]) copyFileSync(join(first, name), join(stranger, name));
    chmodSync(join(stranger, "identity.secret"), 0o600);
    // A keyring of its own, as a hand-made or mistaken copy would be.
    KeyringFileProvider.create(join(stranger, "keyring.json"));
    const wrong = await openDataDir(stranger);
    try {
      const err = await checkSecretsOpen(wrong, stranger).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CustodyError);
      expect((err as CustodyError).code).toBe("CUSTODY_DECRYPT_FAILED");
      expect((err as Error).message).toMatch(/host3\/data's key-encryption key does not open the store's secrets .* copy keyring\.json from a host that works/);
    } finally {
      await wrong.close();
    }
    // And the real command: `portcullis start` stops with it.
    const config = join(stranger, "portcullis.json");
    writeFileSync(config, JSON.stringify({ dataDir: ".", gateway: { port: 0, upstream: "http://127.0.0.1:9" }, admin: { enabled: false }, store: { backend: "postgres", url: SHARED_POSTGRES_URL, schema }, routes: [{ method: "GET", path: "/a", permission: "read" }] }));
    const res = await runCli(["start", "--config", config]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/CUSTODY_DECRYPT_FAILED: .*key-encryption key does not open the store's secrets/);
  });
});
