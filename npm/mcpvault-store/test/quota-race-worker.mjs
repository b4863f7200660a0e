// One racer against a quota (or a proof, or an approval): sends COUNT calls of one token at once against STORE, each
// with the file's `meta` in params._meta when it has one (a proof, approvals); prints {allowed, rate_limited,
// replayed, other}.
//   node quota-race-worker.mjs STORE FILE NAME COUNT START_MS (both racers begin at START_MS, wall clock)
import { readFileSync } from "node:fs";
import { MCPVault, McpVaultError, authorizeWithState } from "mcpvault";
import { openStore } from "mcpvault-store";

const [spec, file, name, count, start] = process.argv.slice(2);
const { publicKey, now, token, meta, args } = JSON.parse(readFileSync(file, "utf8"));
const store = await openStore(spec);
const vault = new MCPVault({ now: () => now });
const counts = { allowed: 0, rate_limited: 0, replayed: 0, other: 0 };
await new Promise((r) => setTimeout(r, Math.max(0, Number(start) - Date.now())));
await Promise.all(Array.from({ length: Number(count) }, async (_, i) => {
  const params = { name: "db_query", arguments: args ?? {}, ...(meta ? { _meta: meta } : {}) };
  const msg = { jsonrpc: "2.0", id: `${name}-${i}`, method: "tools/call", params };
  const out = await authorizeWithState(token, msg, { publicKey, vault, store });
  if (!(out instanceof McpVaultError)) counts.allowed++;
  else if (out.code === "rate_limited") counts.rate_limited++;
  else if (out.code === "replayed") counts.replayed++;
  else counts.other++;
}));
await store.close();
console.log(JSON.stringify(counts));
