// Every tests/vectors file through `npm:mcpvault` on Deno.
//   node_modules/.bin/deno run --allow-read --allow-env deno-vectors.mjs
import assert from "node:assert";
import { createRequire } from "node:module";
import * as api from "npm:mcpvault";

const { run, runGate } = createRequire(import.meta.url)("../mcpvault/test-support/vectors.cjs");
const cold = run(api, "deno", assert);
const cached = run(api, "deno cached", assert, new api.MCPVault({ cache: 256 }));
const gate = await runGate(api, "deno fetch gate", assert, new api.MCPVault({ cache: 256 }));
if (cold.failed + cached.failed + gate.failed > 0 || cold.passed < 40 || gate.passed < 40) Deno.exit(1);
