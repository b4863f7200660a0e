// Runs every vector in workerd (Miniflare, which ships the workerd binary).
//   node workerd-vectors.mjs
import assert from "node:assert";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

const { vectors, coreShape } = createRequire(import.meta.url)("../mcpvault/test-support/vectors.cjs");
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
  let passed = 0, failed = 0;
  for (const mode of ["cold", "cached"]) {
    out[mode].forEach((got, i) => {
      const shaped = got.ok ? { ok: coreShape(got.ok) } : got;
      try {
        assert.deepStrictEqual(shaped, cases[i].expect);
        passed++;
      } catch {
        failed++;
        console.error(`FAIL ${mode} ${cases[i].file}: expected ${JSON.stringify(cases[i].expect)}, got ${JSON.stringify(shaped)}`);
      }
    });
  }
  console.log(`workerd: ${passed} passed, ${failed} failed`);
  code = failed === 0 && passed >= 80 ? 0 : 1;
} finally {
  await mf.dispose();
}
process.exit(code);
