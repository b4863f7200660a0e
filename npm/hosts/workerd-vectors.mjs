// Runs every vector in workerd (Miniflare, which ships the workerd binary).
//   node workerd-vectors.mjs
import assert from "node:assert";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

const { gateCases } = await import("../mcpvault/test-support/gate-answers.mjs");
const { vectors, check } = createRequire(import.meta.url)("../mcpvault/test-support/vectors.cjs");
const here = (p) => fileURLToPath(new URL(p, import.meta.url));

const mf = new Miniflare({
  modules: true,
  scriptPath: here("./workerd/worker.mjs"),
  modulesRoot: here(".."),
  modulesRules: [
    { type: "CompiledWasm", include: ["**/*.wasm"] },
    { type: "ESModule", include: ["**/*.mjs", "**/*.js"] },
  ],
  compatibilityDate: "2025-01-01",
});
let code = 1;
try {
  const cases = vectors();
  const res = await mf.dispatchFetch("http://localhost/", { method: "POST", body: JSON.stringify(cases) });
  const out = await res.json();
  const cold = check("workerd", cases, out.cold, assert);
  const cached = check("workerd cached", cases, out.cached, assert);
  const gc = gateCases(cases);
  const gres = await mf.dispatchFetch("http://localhost/gate", { method: "POST", body: JSON.stringify(gc) });
  const gate = check("workerd fetch gate", gc, await gres.json(), assert);
  const failed = cold.failed + cached.failed + gate.failed;
  const passed = cold.passed + cached.passed;
  code = failed === 0 && passed >= 80 && gate.passed >= 40 ? 0 : 1;
} finally {
  await mf.dispose();
}
process.exit(code);
