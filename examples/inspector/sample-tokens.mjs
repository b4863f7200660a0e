// Tokens the inspector's tests show (explain.test.mjs in Node, npm/hosts/inspector-test.mjs in Chromium).

/** A token with every argument limit type: a root and two hops, each setting some. */
export function constrainedChain(vault, privateKey, now) {
  const root = vault.mint(privateKey, { tools: ["file_read", "fetch", "net", "deploy", "pay", "batch", "db_query"], ttl: 600,
    issuer: "auth-server", subject: "agent-a", argLimits: [
      { tool: "file_read", arg: "path", op: "under", value: "/srv/public/" },
      { tool: "fetch", arg: "url", op: "url", value: "https://*.example.com" },
      { tool: "net", arg: "ip", op: "cidr", value: "10.0.0.0/8" },
      { tool: "deploy", arg: "cluster", op: "glob", value: "staging-*" },
      { tool: "pay", arg: "amount", op: "max", value: 99.5 },
      { tool: "pay", arg: "amount", op: "min", value: 0, number: true },
      { tool: "db_query", arg: "max_rows", op: "max", value: 100 },
    ] }, { now });
  const hop1 = vault.attenuate(root, { argLimits: [
    { tool: "batch", arg: "items[*]", op: "one_of", value: ["a", "b"] },
    { tool: "batch", arg: "items", op: "max_items", value: 10 },
    { tool: "deploy", arg: "config.mode", op: "eq", value: "ro" },
    { tool: "db_query", arg: "table", op: "matches", value: "^[a-z_]+$" },
  ] }, { now });
  return vault.attenuate(hop1, { argLimits: [
    { tool: "fetch", arg: "url", op: "url", value: "https://api.example.com:8443/v1" },
    { tool: "batch", arg: "items", op: "min_items", value: 1 },
    { tool: "file_read", arg: "path", op: "prefix", value: "/srv/public/docs" },
  ] }, { now });
}
