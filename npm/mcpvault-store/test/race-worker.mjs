// One racer: tries every token of FILE once against STORE; prints {allowed, replayed, other}.
//   node race-worker.mjs STORE FILE NAME START_MS (both racers begin at START_MS, wall clock)
import { readFileSync } from "node:fs";
import { MCPVault, McpVaultError, authorizeWithState } from "mcpvault";
import { openStore } from "mcpvault-store";

const [spec, file, name, start] = process.argv.slice(2);
const { publicKey, now, tokens } = JSON.parse(readFileSync(file, "utf8"));
const store = await openStore(spec);
const vault = new MCPVault({ now: () => now });
const counts = { allowed: 0, replayed: 0, other: 0 };
await new Promise((r) => setTimeout(r, Math.max(0, Number(start) - Date.now())));
// Each racer takes the tokens in its own order, so the two collide all along instead of one trailing the other.
const order = tokens.map((t, i) => [i, t]);
let seed = [...name].reduce((a, c) => a * 31 + c.charCodeAt(0), 7);
for (let i = order.length - 1; i > 0; i--) {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  const j = seed % (i + 1);
  [order[i], order[j]] = [order[j], order[i]];
}
for (const [i, token] of order) {
  const msg = { jsonrpc: "2.0", id: `${name}-${i}`, method: "tools/call", params: { name: "db_query", arguments: {} } };
  const out = await authorizeWithState(token, msg, { publicKey, vault, store });
  if (!(out instanceof McpVaultError)) counts.allowed++;
  else if (out.code === "replayed") counts.replayed++;
  else counts.other++;
}
await store.close();
console.log(JSON.stringify(counts));
