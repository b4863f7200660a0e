// In-process cost of the Express middleware (cached) per request, µs: the middleware on a request Express has
// already parsed (express.json()), as in bench/express-server.mjs. For A/B decisions (medians of 5 runs).
import { MCPVault } from "mcpvault";
import { createMcpVaultMiddleware } from "mcpvault-express";
import { timeAsync } from "./timing.mjs";

const vault = new MCPVault();
const { privateKey, publicKey } = vault.generateKeypair();
const root = vault.mint(privateKey, { tools: ["db_query", "file_read", "search"], ttl: 3600, issuer: "auth-server",
  subject: "agent-a", audience: "mcp.example.com", argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 1000 }] });
const token = vault.attenuate(root, { tools: ["db_query"], ttl: 1800 });
const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "db_query", arguments: { max_rows: 5 } } });
const mw = createMcpVaultMiddleware({ publicKeyHex: publicKey, audience: "mcp.example.com", cache: 1024 })();
const res = { statusCode: 200, setHeader() {}, end() { throw new Error("refused"); } };
function request() {
  const req = { method: "POST", url: "/mcp", body: JSON.parse(body), headers: { host: "127.0.0.1:18400", connection: "keep-alive",
    "content-type": "application/json", "x-mcpvault-token": token, "content-length": String(body.length) } };
  return new Promise((resolve) => mw(req, res, () => resolve(req)));
}
const r = await request();
if (!r.auth || r.body.params.name !== "db_query") throw new Error("not allowed");
console.log(JSON.stringify({ middleware_us: +(await timeAsync(20000, request)).toFixed(2) }));
