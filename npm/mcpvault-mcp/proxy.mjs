// mcpvault-proxy: puts mcpvault in front of an MCP server you cannot change. It relays JSON-RPC messages between a
// downstream client (stdio or Streamable HTTP) and an upstream server (a spawned stdio child or a Streamable HTTP
// URL): every message from the client — requests, notifications and responses, of every method — is decided by the
// core guard and refused or forwarded without its token; tools/list answers are filtered to the granted tools; a
// single-use call runs once upstream and its retries get its recorded response; an HTTP session is bound to the
// subject whose token opened it.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { createMcpVaultMiddleware } from "mcpvault-express";
import { Guard } from "mcpvault";
import { Policy, LISTS, TOOLS_LIST, responseOf, definitionsOf } from "./policy.mjs";

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isRequest = (m) => isObject(m) && typeof m.method === "string" && m.id !== undefined && m.id !== null;
const isResponse = (m) => isObject(m) && m.method === undefined && m.id !== undefined && ("result" in m || "error" in m);

const CONFIG_KEYS = ["publicKey", "audience", "upstream", "downstream", "tokenEnv", "checkTool", "cache", "log", "store",
  "mappings", "toolMappings", "rules", "openResources", "openPrompts"];

/**
 * Reads and checks a proxy configuration (JSON). Relative `upstream.cwd` is resolved against the file's folder
 * (default: that folder). `publicKey` may be left out when MCPVAULT_PUBLIC_KEY is set.
 */
export function loadConfig(file, env = process.env) {
  let raw;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError(`cannot read ${file}: ${e.message}`);
  }
  return checkConfig(raw, dirname(resolve(file)), env);
}

export class ConfigError extends Error {}

export function checkConfig(raw, base = process.cwd(), env = process.env) {
  const fail = (m) => new ConfigError(`config: ${m}`);
  if (!isObject(raw)) throw fail("must be a JSON object");
  for (const k of Object.keys(raw)) if (!CONFIG_KEYS.includes(k)) throw fail(`unknown key ${JSON.stringify(k)}`);
  const publicKey = raw.publicKey ?? env.MCPVAULT_PUBLIC_KEY;
  if (typeof publicKey !== "string" || publicKey === "") throw fail("publicKey is required (or set MCPVAULT_PUBLIC_KEY)");
  const up = raw.upstream;
  if (!isObject(up)) throw fail("upstream must be { command, args?, env?, cwd? } or { url, headers? }");
  let upstream;
  if (typeof up.command === "string" && up.url === undefined) {
    for (const k of Object.keys(up)) if (!["command", "args", "env", "cwd"].includes(k)) throw fail(`upstream: unknown key ${JSON.stringify(k)}`);
    if (up.args !== undefined && !(Array.isArray(up.args) && up.args.every((a) => typeof a === "string"))) throw fail("upstream.args must be strings");
    if (up.env !== undefined && !(isObject(up.env) && Object.values(up.env).every((v) => typeof v === "string"))) throw fail("upstream.env must map names to strings");
    if (up.cwd !== undefined && typeof up.cwd !== "string") throw fail("upstream.cwd must be a string");
    upstream = { command: up.command, args: up.args ?? [], env: up.env ?? {}, cwd: resolve(base, up.cwd ?? ".") };
  } else if (typeof up.url === "string" && up.command === undefined) {
    for (const k of Object.keys(up)) if (!["url", "headers"].includes(k)) throw fail(`upstream: unknown key ${JSON.stringify(k)}`);
    let url;
    try {
      url = new URL(up.url);
    } catch {
      throw fail("upstream.url is not a URL");
    }
    if (up.headers !== undefined && !(isObject(up.headers) && Object.values(up.headers).every((v) => typeof v === "string"))) throw fail("upstream.headers must map names to strings");
    upstream = { url, headers: up.headers ?? {} };
  } else throw fail("upstream needs exactly one of command or url");
  const down = raw.downstream ?? "stdio";
  let downstream;
  if (down === "stdio") downstream = { stdio: true };
  else if (isObject(down) && isObject(down.http) && Object.keys(down).length === 1) {
    const h = down.http;
    for (const k of Object.keys(h)) if (!["host", "port", "path"].includes(k)) throw fail(`downstream.http: unknown key ${JSON.stringify(k)}`);
    const port = h.port ?? 8080;
    if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw fail("downstream.http.port must be 0..65535");
    const path = h.path ?? "/mcp";
    if (typeof path !== "string" || !path.startsWith("/")) throw fail("downstream.http.path must start with /");
    downstream = { http: { host: h.host ?? "127.0.0.1", port, path } };
  } else throw fail('downstream must be "stdio" or { "http": { host?, port?, path? } }');
  const tokenEnv = raw.tokenEnv ?? "MCPVAULT_TOKEN";
  if (typeof tokenEnv !== "string") throw fail("tokenEnv must be a variable name");
  if (raw.audience !== undefined && typeof raw.audience !== "string") throw fail("audience must be a string");
  if (raw.log !== undefined && typeof raw.log !== "boolean") throw fail("log must be true or false");
  if (raw.store !== undefined && !(raw.store === "memory" || /^(sqlite:.+|rediss?:\/\/.+)$/.test(raw.store ?? ""))) {
    throw fail('store must be "memory", "sqlite:FILE" or "redis://HOST:PORT"');
  }
  policyError(publicKey, raw, fail);
  for (const k of ["openResources", "openPrompts"]) {
    if (raw[k] !== undefined && typeof raw[k] !== "boolean") throw fail(`${k} must be true or false`);
  }
  return {
    publicKey,
    audience: raw.audience,
    upstream,
    downstream,
    tokenEnv,
    checkTool: raw.checkTool ?? false,
    cache: raw.cache ?? true,
    log: raw.log ?? true,
    store: raw.store === undefined ? undefined : raw.store.startsWith("sqlite:") ? `sqlite:${resolve(base, raw.store.slice(7))}` : raw.store,
    // the server's policy (checked by the core above: policyError)
    ...(raw.mappings !== undefined ? { mappings: raw.mappings } : {}),
    ...(raw.toolMappings !== undefined ? { toolMappings: raw.toolMappings } : {}),
    ...(raw.rules !== undefined ? { rules: raw.rules } : {}),
    ...(raw.openResources !== undefined ? { openResources: raw.openResources } : {}),
    ...(raw.openPrompts !== undefined ? { openPrompts: raw.openPrompts } : {}),
  };
}

/** The server's policy checked by the core now, so a bad one is a config error (a bad key is left to startProxy). */
function policyError(publicKey, raw, fail) {
  if (raw.mappings === undefined && raw.toolMappings === undefined && raw.rules === undefined) return;
  try {
    new Guard({ publicKey, mappings: raw.mappings, toolMappings: raw.toolMappings, rules: raw.rules, cache: 0 });
  } catch (e) {
    if (e.code !== "invalid_key") throw fail(e.message);
  }
}

function upstreamTransport(up) {
  if (up.url) return new StreamableHTTPClientTransport(up.url, { requestInit: { headers: up.headers } });
  return new StdioClientTransport({
    command: up.command,
    args: up.args,
    env: { ...getDefaultEnvironment(), ...up.env },
    cwd: up.cwd,
    stderr: "inherit",
  });
}

/** One downstream connection relayed to one upstream connection. */
class Relay {
  constructor(policy, downstream, upstream, fallbackToken) {
    this.policy = policy;
    this.down = downstream;
    this.up = upstream;
    this.fallback = fallbackToken;
    this.lists = new Map(); // list request id (tools, resources, templates, prompts) -> { outcome, request }
    this.calls = new Map(); // single-use tools/call request id -> outcome, to record the response
    this.initializeIds = new Set();
    this.definitionAsks = new Map(); // the proxy's own tools/list request id -> resolve(result)
    this.asked = 0;
    // the subject whose token opened the session: later messages must carry a token of the same subject
    this.subject = undefined;
    this.closed = false;
  }

  async start() {
    this.up.onmessage = (m) => this.fromServer(m).catch((e) => this.fail(e));
    this.down.onmessage = (m, extra) => this.fromClient(m, extra).catch((e) => this.fail(e));
    this.up.onclose = () => this.close();
    this.down.onclose = () => this.close();
    this.up.onerror = (e) => console.error("mcpvault-proxy: upstream:", e?.message ?? e);
    this.down.onerror = (e) => console.error("mcpvault-proxy: downstream:", e?.message ?? e);
    await this.up.start();
    await this.down.start();
  }

  fail(e) {
    console.error("mcpvault-proxy:", e?.stack ?? e);
  }

  /**
   * The upstream's current tool definitions (the hashes of its tools/list, every page up to 20), asked by the proxy
   * itself before each tools/call: a token pinning a tool calls it only as it was pinned, whatever the server said
   * before (SCHEMA.md, "Pinned tool definitions"). Any failure is no definitions: a pinned call is then refused.
   */
  async definitions() {
    const tools = [];
    let cursor;
    for (let page = 0; page < 20; page++) {
      // an id no client can choose: the answer is the proxy's, never a client's response
      const id = `mcpvault-definitions-${++this.asked}-${randomUUID()}`;
      const result = await new Promise((resolve) => {
        const timer = setTimeout(() => { this.definitionAsks.delete(id); resolve(undefined); }, 10_000);
        this.definitionAsks.set(id, (r) => { clearTimeout(timer); resolve(r); });
        this.up.send({ jsonrpc: "2.0", id, method: TOOLS_LIST, params: cursor === undefined ? {} : { cursor } })
          .catch(() => { this.definitionAsks.delete(id); clearTimeout(timer); resolve(undefined); });
      });
      if (!isObject(result) || !Array.isArray(result.tools)) return {};
      tools.push(...result.tools);
      cursor = result.nextCursor;
      if (typeof cursor !== "string") return definitionsOf({ tools });
    }
    return {};
  }

  async fromClient(message, extra) {
    // the upstream is asked only when the guard says a pinned call of a valid token needs its definitions: a client
    // without a token (or whose token pins nothing it calls) never makes the proxy ask anything
    const defs = isRequest(message) ? () => this.definitions() : undefined;
    const outcome = await this.policy.decide(message, extra?.authInfo, this.fallback, this.subject, extra, defs);
    if (!outcome.allowed) {
      // a request gets the error; a refused notification or response is dropped (onDecision has it)
      if (isRequest(message)) return this.down.send({ ...outcome.response, id: message.id });
      return;
    }
    if (this.subject === undefined) this.subject = outcome.facts?.subject;
    for (const answer of outcome.answers) await this.down.send(answer, { relatedRequestId: answer.id });
    const forward = outcome.forward;
    if (forward == null) return;
    if (isRequest(forward)) {
      if (LISTS.has(forward.method)) this.lists.set(forward.id, { outcome, request: forward });
      if (outcome.call_key) this.calls.set(forward.id, outcome);
      if (forward.method === "initialize") this.initializeIds.add(forward.id);
    }
    return this.up.send(forward);
  }

  async fromServer(message) {
    if (isResponse(message) && this.definitionAsks.has(message.id)) {
      // the answer to the proxy's own tools/list: never the client's
      const resolve = this.definitionAsks.get(message.id);
      this.definitionAsks.delete(message.id);
      return resolve("error" in message ? undefined : message.result);
    }
    if (isResponse(message)) {
      const list = this.lists.get(message.id);
      if (list) {
        this.lists.delete(message.id);
        if (isObject(message.result)) {
          message = { ...message, result: this.policy.filterResult(list.request.method, message.result, list.outcome, list.request) };
        }
      }
      const called = this.calls.get(message.id);
      if (called) {
        this.calls.delete(message.id);
        await this.policy.complete(called, "error" in message ? { error: message.error } : responseOf(message.result));
      }
      if (this.initializeIds.delete(message.id) && typeof message.result?.protocolVersion === "string") {
        this.up.setProtocolVersion?.(message.result.protocolVersion);
      }
      return this.down.send(message, { relatedRequestId: message.id });
    }
    return this.down.send(message);
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.up.close(), this.down.close()]);
    this.onclose?.();
  }
}

function policyOf(config, onDecision, onSoftRule, store) {
  return new Policy(
    { publicKeyHex: config.publicKey, audience: config.audience, cache: config.cache, checkTool: config.checkTool, onDecision, onSoftRule,
      mappings: config.mappings, toolMappings: config.toolMappings, rules: config.rules,
      openResources: config.openResources, openPrompts: config.openPrompts,
      ...(store ? { store } : {}) },
    "mcpvault-proxy",
  );
}

async function storeOf(config) {
  if (!config.store) return null;
  const { openStore } = await import("mcpvault-store");
  return openStore(config.store);
}

function decisionLogger(config) {
  if (!config.log) return undefined;
  return (d) => {
    const { facts, detail, ...rest } = d;
    console.error(`mcpvault-proxy: ${JSON.stringify(rest)}`);
  };
}

/**
 * Starts the proxy for a checked config (see checkConfig). Resolves to `{ close(), url? }`; `url` is the
 * downstream HTTP endpoint when downstream is HTTP.
 */
export async function startProxy(config, options = {}) {
  const onDecision = options.onDecision ?? decisionLogger(config);
  const store = await storeOf(config);
  const policy = policyOf(config, onDecision, options.onSoftRule, store);
  if (config.downstream.stdio) {
    const relay = new Relay(policy, new StdioServerTransport(), upstreamTransport(config.upstream), (options.env ?? process.env)[config.tokenEnv]);
    const done = new Promise((res) => (relay.onclose = res)).then(() => store?.close());
    await relay.start();
    return { close: () => relay.close(), closed: done };
  }
  const { host, port, path } = config.downstream.http;
  const app = createMcpExpressApp({ host });
  // The HTTP layer answers 401/403 with challenges for tokens that cannot be used at all; the relay behind it, which
  // sees responses, decides each message with the store (revocation, single use with recorded responses, audit).
  const auth = createMcpVaultMiddleware({
    publicKeyHex: config.publicKey,
    audience: config.audience,
    cache: config.cache,
    deferSpend: true,
    // the same policy: a call allowed by its mapped scope passes here too, a hard rule is refused here
    mappings: config.mappings,
    toolMappings: config.toolMappings,
    rules: config.rules,
    openResources: config.openResources,
    openPrompts: config.openPrompts,
    // the refusals it answers itself; the relay reports the rest
    onDecision: onDecision && ((d) => d.allowed || onDecision(d)),
  });
  const relays = new Map();
  app.all(path, auth(), async (req, res) => {
    try {
      const sid = req.headers["mcp-session-id"];
      let relay = typeof sid === "string" ? relays.get(sid) : undefined;
      if (!relay) {
        if (sid !== undefined || req.method !== "POST" || !isInitializeRequest(req.body)) {
          // typed like every refusal: invalid_request; an unknown session is 404, as MCP's Streamable HTTP asks (the
          // client starts a new one)
          const status = sid !== undefined ? 404 : 400;
          res.status(status).json({
            jsonrpc: "2.0",
            id: null,
            error: { code: -32600, message: sid !== undefined ? "invalid request: unknown session" : "invalid request: no session: send initialize first",
              data: { code: "invalid_request", status } },
          });
          return;
        }
        const transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => relays.set(id, relay),
        });
        relay = new Relay(policy, transport, upstreamTransport(config.upstream), undefined);
        relay.onclose = () => {
          if (transport.sessionId) relays.delete(transport.sessionId);
        };
        await relay.start();
      }
      await relay.down.handleRequest(req, res, req.body);
    } catch (e) {
      console.error("mcpvault-proxy:", e?.stack ?? e);
      if (!res.headersSent) res.status(500).json({ jsonrpc: "2.0", id: null, error: { code: -32603, message: "internal error" } });
    }
  });
  const server = await new Promise((res, rej) => {
    const s = app.listen(port, host, () => res(s));
    s.on("error", rej);
  });
  const addr = server.address();
  const url = `http://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}${path}`;
  return {
    url,
    close: async () => {
      await Promise.allSettled([...relays.values()].map((r) => r.close()));
      server.closeAllConnections?.();
      await new Promise((res) => server.close(() => res()));
      await store?.close();
    },
  };
}
