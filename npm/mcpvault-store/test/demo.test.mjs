// The delegation demo with its revocation step, on a SQLite file and on Redis.
import test from "node:test";
import assert from "node:assert";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startRedis, tmp } from "./helpers.mjs";

const demo = fileURLToPath(new URL("../../../examples/delegation-demo/demo.mjs", import.meta.url));
const run = (store) => promisify(execFile)(process.execPath, [demo, "--store", store], { encoding: "utf8" });

test("make demo STORE=sqlite:FILE", async () => {
  const { stdout } = await run(`sqlite:${join(tmp(), "demo.db")}`);
  assert.match(stdout, /refused: HTTP 401 revoked/);
  assert.match(stdout, /audit log: 12 entries, hash chain verifies/);
  assert.match(stdout, /demo ok/);
});

test("make demo STORE=redis://…", async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const { stdout } = await run(redis.url);
  assert.match(stdout, /in the redis store/);
  assert.match(stdout, /refused: HTTP 401 revoked/);
  assert.match(stdout, /demo ok/);
});
