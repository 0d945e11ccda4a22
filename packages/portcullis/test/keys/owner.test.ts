/**
 * Key owners: the person behind a key (an approver of that name never approves what the key
 * initiated). Set on creation, changed or cleared by an update, inherited by a rotation's
 * successor, and validated like an approver's name.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseCreateKeyInput, parseRotateKeyInput, parseUpdateKeyInput } from "../../src/keys/input.js";
import { type TestCore, makeCore } from "../support/harness.js";

let t: TestCore;
beforeAll(async () => {
  t = await makeCore();
});
afterAll(async () => {
  await t.cleanup();
});

describe("key owners", () => {
  it("is null unless given; set, changed and cleared; inherited by a successor", async () => {
    expect((await t.createKey({})).key.owner).toBeNull();
    const created = await t.createKey({ owner: "alice@desk-1" });
    expect(created.key.owner).toBe("alice@desk-1");
    const id = created.key.id;
    expect((await t.core.keys.update(id, valueOrThrow(parseUpdateKeyInput({ owner: "bob" })), "test")).owner).toBe("bob");
    const rotated = await t.core.keys.rotate(id, valueOrThrow(parseRotateKeyInput({})), "test");
    expect(rotated.key.owner).toBe("bob");
    expect((await t.core.keys.update(rotated.key.id, valueOrThrow(parseUpdateKeyInput({ owner: null })), "test")).owner).toBeNull();
  });

  it.each([[""], ["-alice"], ["a b"], ["x".repeat(65)], [5], [["alice"]]])("refuses the owner %j", (owner) => {
    const created = parseCreateKeyInput({ account: "acct-1", scopes: ["read"], owner }, t.clock.ms);
    expect(created.ok).toBe(false);
    if (!created.ok) expect(created.fields).toHaveProperty("owner");
    const updated = parseUpdateKeyInput({ owner });
    expect(updated.ok).toBe(false);
  });
});
