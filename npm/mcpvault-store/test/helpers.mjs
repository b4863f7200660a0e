// Stores under test: memory, SQLite in a temporary file, and Redis — a redis-server (Debian's) started here on
// 127.0.0.1 on a free port, stopped after. REDIS_URL points the tests at another server instead.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "mcpvault-store";

export const tmp = () => mkdtempSync(join(tmpdir(), "mcpvault-store-"));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/** Starts redis-server on a free loopback port; resolves to { url, stop() }. */
export async function startRedis() {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: async () => {} };
  const port = await freePort();
  const dir = tmp();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
    "--dir", dir], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("Ready to accept connections")) resolve();
    });
    child.on("error", (e) => reject(new Error(`redis-server did not start (apt install redis-server): ${e.message}`)));
    child.on("exit", (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    }),
  };
}

let dbIndex = 0;
/** A fresh, empty store of `kind`: "memory", "sqlite" (a new file) or "redis" (a new logical db, flushed). */
export async function freshStore(kind, redisUrl) {
  if (kind === "memory") return { store: await openStore("memory"), spec: "memory" };
  if (kind === "sqlite") {
    const spec = `sqlite:${join(tmp(), "vault.db")}`;
    return { store: await openStore(spec), spec };
  }
  const spec = `${redisUrl}/${(dbIndex++ % 15) + 1}`;
  const store = await openStore(spec);
  await store.redis.flushdb();
  return { store, spec };
}

export function hasRedisServer() {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return Boolean(process.env.REDIS_URL);
  }
}
