#!/usr/bin/env node
// mcpvault-proxy --config FILE: see README.md. Exit 2 on a bad command line or config.
import { ConfigError, loadConfig, startProxy } from "../proxy.mjs";

const USAGE = "usage: mcpvault-proxy --config FILE";
const argv = process.argv.slice(2);
if (argv.includes("--help") || argv.includes("-h")) {
  console.log(`${USAGE}\n\nConfig (JSON): { "publicKey": HEX, "upstream": { "command", "args", "env", "cwd" } | { "url", "headers" },
  "downstream": "stdio" | { "http": { "host", "port", "path" } }, "audience"?, "tokenEnv"?, "checkTool"?, "cache"?, "log"? }`);
  process.exit(0);
}
let file;
if (argv.length === 2 && argv[0] === "--config") file = argv[1];
else if (argv.length === 1 && argv[0].startsWith("--config=")) file = argv[0].slice("--config=".length);
if (!file) {
  console.error(USAGE);
  process.exit(2);
}
let proxy;
try {
  proxy = await startProxy(loadConfig(file));
} catch (e) {
  console.error(`mcpvault-proxy: ${e instanceof ConfigError || e instanceof TypeError ? e.message : e?.stack ?? e}`);
  process.exit(2);
}
if (proxy.url) console.error(`mcpvault-proxy: listening on ${proxy.url}`);
const stop = async () => {
  await proxy.close();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
if (proxy.closed) proxy.closed.then(() => process.exit(0));
