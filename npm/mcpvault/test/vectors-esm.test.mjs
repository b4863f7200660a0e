import test from "node:test";
import assert from "node:assert";
import { createRequire } from "node:module";
import * as api from "mcpvault";

const { run } = createRequire(import.meta.url)("../test-support/vectors.cjs");

test("every vector through import 'mcpvault'", () => {
  const { passed, failed } = run(api, "node esm", assert);
  assert.ok(passed >= 40);
  assert.strictEqual(failed, 0);
});

test("every vector a JSON-RPC message can carry, through the fetch gate (authorizeFetch)", async () => {
  const { runGate } = createRequire(import.meta.url)("../test-support/vectors.cjs");
  const { passed, failed } = await runGate(api, "node fetch gate", assert, new api.MCPVault({ cache: 64 }));
  assert.ok(passed >= 40);
  assert.strictEqual(failed, 0);
});
