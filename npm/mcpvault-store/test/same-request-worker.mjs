// One racer of the idempotency test: sends the SAME request (same id, same call) of one single-use token COUNT times
// at once against STORE, runs the "handler" for each allowed outcome (appending a line to RUNS) and records its
// response; prints {allowed, in_flight, answered, other}.
//   node same-request-worker.mjs STORE FILE COUNT RUNS START_MS
import { appendFileSync, readFileSync } from "node:fs";
import { Guard } from "mcpvault";
import { openStore } from "mcpvault-store";

const [spec, file, count, runs, start] = process.argv.slice(2);
const { publicKey, now, token } = JSON.parse(readFileSync(file, "utf8"));
const store = await openStore(spec);
const guard = new Guard({ publicKey, store, now: () => now });
const counts = { allowed: 0, in_flight: 0, answered: 0, other: 0 };
const msg = { jsonrpc: "2.0", id: "same", method: "tools/call", params: { name: "db_query", arguments: { sql: "select 1" } } };
await new Promise((r) => setTimeout(r, Math.max(0, Number(start) - Date.now())));
await Promise.all(Array.from({ length: Number(count) }, async () => {
  const out = await guard.decide({ body: msg, fallbackToken: token });
  if (out.allowed && out.forward) {
    counts.allowed++;
    appendFileSync(runs, `${process.pid}\n`); // the handler ran
    await new Promise((r) => setTimeout(r, 50));
    await guard.complete(out, { result: { content: [{ type: "text", text: "1 row" }] } });
  } else if (out.allowed) counts.answered++;
  else if (out.decisions[0].code === "in_flight") counts.in_flight++;
  else counts.other++;
}));
await store.close();
console.log(JSON.stringify(counts));
