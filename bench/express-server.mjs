// One Express 5 server for the throughput benchmark: `node express-server.mjs VARIANT PORT`, variants `none`,
// `mcpvault-cold` (no cache: every request verifies the chain), `mcpvault-cached`, `jwt` (jose EdDSA bearer).
// Keys come in the environment (MCPVAULT_PUBKEY, JWT_PUBLIC_JWK). Prints "listening" when ready.
import express from "express";
import * as jose from "jose";
import { createMcpVaultMiddleware } from "mcpvault-express";

const [variant, port] = process.argv.slice(2);
const app = express();
app.use(express.json());
let guard = (req, res, next) => next();
if (variant === "mcpvault-cold" || variant === "mcpvault-cached") {
  guard = createMcpVaultMiddleware({
    publicKeyHex: process.env.MCPVAULT_PUBKEY,
    audience: "mcp.example.com",
    cache: variant === "mcpvault-cached" ? 1024 : false,
  })();
} else if (variant === "jwt") {
  const key = await jose.importJWK(JSON.parse(process.env.JWT_PUBLIC_JWK), "EdDSA");
  guard = (req, res, next) => {
    const h = req.headers.authorization ?? "";
    if (!h.startsWith("Bearer ")) return res.status(401).end();
    jose.jwtVerify(h.slice(7), key, { audience: "mcp.example.com" }).then(
      ({ payload }) => {
        const tool = req.body?.params?.name;
        if (!Array.isArray(payload.tools) || !payload.tools.includes(tool)) return res.status(403).end();
        req.auth = payload;
        next();
      },
      () => res.status(401).end(),
    );
  };
} else if (variant !== "none") {
  throw new Error(`unknown variant ${variant}`);
}
app.post("/mcp", guard, (req, res) => {
  res.json({ jsonrpc: "2.0", id: req.body?.id ?? null, result: { content: [{ type: "text", text: "ok" }] } });
});
process.on("SIGINT", () => process.exit(0)); // lets --cpu-prof write its profile
app.listen(Number(port), "127.0.0.1", () => console.log("listening"));
