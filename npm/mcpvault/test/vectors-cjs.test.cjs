const test = require("node:test");
const assert = require("node:assert");
const { run } = require("../test-support/vectors.cjs");

test("every vector through require('mcpvault')", () => {
  const api = require("..");
  const { passed, failed } = run(api, "node cjs", assert);
  assert.ok(passed >= 40);
  assert.strictEqual(failed, 0);
});
