// Express throughput on loopback with autocannon: the same JSON-RPC tools/call against a server with no auth,
// mcpvault on every request (cold: no cache; cached), and a plain JWT bearer middleware (jose EdDSA).
// 10 connections, 1 s warm-up, then 5 rounds of 3 s per variant. Writes build/bench/express.json.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import * as jose from "jose";
import { MCPVault } from "mcpvault";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "../build/bench");
mkdirSync(out, { recursive: true });
const duration = Number(process.env.BENCH_SECONDS ?? 3);

const vault = new MCPVault();
const { privateKey, publicKey } = vault.generateKeypair();
const root = vault.mint(privateKey, { tools: ["db_query", "file_read", "search"], ttl: 3600, issuer: "auth-server",
  subject: "agent-a", audience: "mcp.example.com", argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 1000 }] });
const token = vault.attenuate(root, { tools: ["db_query"], ttl: 1800 }); // one attenuation block, as a sub-agent holds
const jwtKeys = await jose.generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
const jwt = await new jose.SignJWT({ tools: ["db_query"], aud: "mcp.example.com" }).setProtectedHeader({ alg: "EdDSA" })
  .setIssuer("auth-server").setSubject("agent-a").setIssuedAt().setExpirationTime("1h").sign(jwtKeys.privateKey);
const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "db_query", arguments: { max_rows: 5 } } });
const env = { ...process.env, MCPVAULT_PUBKEY: publicKey, JWT_PUBLIC_JWK: JSON.stringify(await jose.exportJWK(jwtKeys.publicKey)) };
const headers = {
  none: {},
  "mcpvault-cold": { "x-mcpvault-token": token },
  "mcpvault-cached": { "x-mcpvault-token": token },
  jwt: { authorization: `Bearer ${jwt}` },
};

// All four servers run at once (an idle one costs nothing); each round measures every variant in turn, so a drift in
// the machine's speed hits all of them alike, and the ratios to "none" are taken within a round. Median of 5 rounds.
const variants = ["none", "mcpvault-cold", "mcpvault-cached", "jwt"];
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
let port = 18400 + Math.floor(Math.random() * 500);
const servers = {};
try {
  for (const v of variants) {
    const p = port++;
    const child = spawn(process.execPath, [join(here, "express-server.mjs"), v, String(p)], { env, stdio: ["ignore", "pipe", "inherit"] });
    servers[v] = { child, opts: { url: `http://127.0.0.1:${p}/mcp`, method: "POST", body, connections: 10,
      headers: { "content-type": "application/json", ...headers[v] } } };
    await once(child.stdout, "data");
    const check = await fetch(servers[v].opts.url, { method: "POST", headers: servers[v].opts.headers, body });
    if (check.status !== 200) throw new Error(`${v}: status ${check.status}`);
    await autocannon({ ...servers[v].opts, duration: 1 }); // warm-up
  }
  const samples = Object.fromEntries(variants.map((v) => [v, []]));
  for (let r = 0; r < rounds; r++) {
    const round = {};
    for (const v of variants) {
      const res = await autocannon({ ...servers[v].opts, duration });
      if (res.non2xx || res.errors) throw new Error(`${v}: ${res.non2xx} non-2xx, ${res.errors} errors`);
      round[v] = { rps: res.requests.average, p50: res.latency.p50, p99: res.latency.p99 };
    }
    for (const v of variants) samples[v].push({ ...round[v], ratio: round[v].rps / round.none.rps });
    console.log(`round ${r + 1}:`, variants.map((v) => `${v} ${Math.round(round[v].rps)}`).join(", "));
  }
  const median = (xs, k) => [...xs].sort((a, b) => a[k] - b[k])[Math.floor(xs.length / 2)][k];
  const result = Object.fromEntries(variants.map((v) => [v, {
    rps: median(samples[v], "rps"), p50: median(samples[v], "p50"), p99: median(samples[v], "p99"),
    ratio: median(samples[v], "ratio"), rounds: samples[v].map((x) => Math.round(x.rps)),
  }]));
  writeFileSync(join(out, "express.json"), JSON.stringify(result, null, 2));
  for (const v of variants) console.log(v, JSON.stringify(result[v]));
} finally {
  for (const s of Object.values(servers)) s.child.kill();
}
