// mcpvault-proxy: puts mcpvault in front of an MCP server you cannot change. It relays JSON-RPC messages between a
// downstream client (stdio or Streamable HTTP) and an upstream server (a spawned stdio child or a Streamable HTTP
// URL): every message from the client — requests, notifications and responses, of every method — is decided by the
// core guard and refused or forwarded without its token; tools/list answers are filtered to the granted tools; a
// single-use call runs once upstream and its retries get its recorded response; an HTTP session is bound to the
// subject whose token opened it.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { localhostHostValidation } from "@modelcontextprotocol/sdk/server/middleware/hostHeaderValidation.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { createMcpVaultMiddleware } from "mcpvault-express";
import { Guard, challenge, McpVaultError } from "mcpvault";
import { Policy, LISTS, TOOLS_LIST, responseOf, definitionsOf } from "./policy.mjs";

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isRequest = (m) => isObject(m) && typeof m.method === "string" && m.id !== undefined && m.id !== null;
const isResponse = (m) => isObject(m) && m.method === undefined && m.id !== undefined && ("result" in m || "error" in m);

const CONFIG_KEYS = ["publicKey", "audience", "upstream", "downstream", "tokenEnv", "checkTool", "cache", "log", "store",
  "mappings", "toolMappings", "rules", "openResources", "openPrompts", "sessions", "maxBodyContainers", "maxBodyValues"];

// The HTTP downstream's sessions (each holds an upstream connection, a child process for a command upstream): at most
// `max` open, `perSubject` of one token subject, each closed after `idleSeconds` without a request or an upstream
// message while none of its requests waits for the upstream.
const SESSIONS = { max: 100, perSubject: 10, idleSeconds: 1800 };

// The most requests of one session (or of the stdio client) waiting for the upstream's answer: past it a request is
// refused rate_limited, never queued (each waiting request holds its outcome, and over HTTP an open response).
export const MAX_WAITING = 1000;

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
  for (const k of ["maxBodyContainers", "maxBodyValues"]) {
    if (raw[k] !== undefined && !(Number.isSafeInteger(raw[k]) && raw[k] >= 0)) throw fail(`${k} must be a whole number from 0`);
  }
  const sessions = { ...SESSIONS };
  if (raw.sessions !== undefined) {
    if (!isObject(raw.sessions)) throw fail("sessions must be { max?, perSubject?, idleSeconds? }");
    for (const [k, v] of Object.entries(raw.sessions)) {
      if (!(k in SESSIONS)) throw fail(`sessions: unknown key ${JSON.stringify(k)}`);
      const whole = k !== "idleSeconds";
      if (typeof v !== "number" || !(v > 0) || v > 1e9 || (whole && !Number.isSafeInteger(v))) {
        throw fail(`sessions.${k} must be a ${whole ? "whole " : ""}number from ${whole ? 1 : "above 0"} to 1e9`);
      }
      sessions[k] = v;
    }
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
    sessions,
    store: raw.store === undefined ? undefined : raw.store.startsWith("sqlite:") ? `sqlite:${resolve(base, raw.store.slice(7))}` : raw.store,
    // the server's policy (checked by the core above: policyError)
    ...(raw.mappings !== undefined ? { mappings: raw.mappings } : {}),
    ...(raw.toolMappings !== undefined ? { toolMappings: raw.toolMappings } : {}),
    ...(raw.rules !== undefined ? { rules: raw.rules } : {}),
    ...(raw.openResources !== undefined ? { openResources: raw.openResources } : {}),
    ...(raw.openPrompts !== undefined ? { openPrompts: raw.openPrompts } : {}),
    ...(raw.maxBodyContainers !== undefined ? { maxBodyContainers: raw.maxBodyContainers } : {}),
    ...(raw.maxBodyValues !== undefined ? { maxBodyValues: raw.maxBodyValues } : {}),
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

/** One downstream connection relayed to one upstream connection (exported for tests: not part of the API). */
export class Relay {
  /** `decided`: the outcome of the first message (an HTTP session's initialize), decided before the relay started. */
  constructor(policy, downstream, upstream, fallbackToken, decided) {
    this.policy = policy;
    this.down = downstream;
    this.up = upstream;
    this.fallback = fallbackToken;
    // every request forwarded upstream goes with an id of the proxy's (the client's ids may repeat): the proxy's id ->
    // { id: the client's, method, outcome, request }. An answer is matched to its request by that id alone: a list
    // answer is filtered with its own request's outcome, and an answer to no pending request goes nowhere.
    this.pending = new Map();
    this.sent = 0;
    this.inFlight = new Map(); // the client's id -> the proxy's id, of a forwarded request (for notifications/cancelled)
    this.definitionAsks = new Map(); // the proxy's own tools/list request id -> resolve(result)
    this.asked = 0;
    this.decided = decided;
    // the subject whose token opened the session: later messages must carry a token of the same subject
    this.subject = decided?.outcome.facts?.subject;
    this.closed = false;
    // the last allowed message of the client's, or answer of the upstream's to one (for the idle close): a refused
    // request (another subject's) or the upstream's own chatter keeps no session open
    this.active = Date.now();
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

  /** The HTTP session's request that carries no message (the SSE GET, the DELETE, another verb), decided by the core
   * with the store and this session's subject. */
  admit(req, sessionId) {
    return this.policy.decideRequest(req.method, req.auth, this.subject, { sessionId, requestInfo: { headers: req.headers } });
  }

  async fromClient(message, extra) {
    if (isRequest(message) && this.pending.size >= MAX_WAITING) {
      // refused before it is decided: nothing of it is spent or counted
      const c = challenge(new McpVaultError("rate_limited", "rate limited: too many requests wait for the upstream"), { id: message.id });
      return this.down.send({ ...c.body, id: message.id });
    }
    let outcome;
    const first = this.decided;
    if (first !== undefined && isRequest(message) && message.id === first.id && message.method === first.method) {
      // the session's initialize, decided before the session and the upstream were made: not decided twice
      this.decided = undefined;
      outcome = first.outcome;
    } else {
      // the upstream is asked only when the guard says a pinned call of a valid token needs its definitions: a client
      // without a token (or whose token pins nothing it calls) never makes the proxy ask anything
      const defs = isRequest(message) ? () => this.definitions() : undefined;
      outcome = await this.policy.decide(message, extra?.authInfo, this.fallback, this.subject, extra, defs);
    }
    if (!outcome.allowed) {
      // a request gets the error; a refused notification or response is dropped (onDecision has it)
      if (isRequest(message)) return this.down.send({ ...outcome.response, id: message.id });
      return;
    }
    this.active = Date.now();
    if (this.subject === undefined) this.subject = outcome.facts?.subject;
    for (const answer of outcome.answers) await this.down.send(answer, { relatedRequestId: answer.id });
    let forward = outcome.forward;
    if (forward == null) return;
    let sentId;
    if (isRequest(forward)) {
      sentId = `mcpvault-${++this.sent}`;
      this.pending.set(sentId, { id: forward.id, method: forward.method, outcome, request: forward });
      this.inFlight.set(forward.id, sentId);
      forward = { ...forward, id: sentId };
    } else if (forward.method === "notifications/cancelled") {
      // the client cancels its request: the upstream knows it by the proxy's id, and its answer (MCP servers send
      // none after a cancel) is no longer awaited: nothing of the request is kept. A cancel of no request of this
      // client's in flight goes nowhere: the upstream's ids are the proxy's, and a cancel naming one (they count up)
      // would leave its request waiting forever, its session never idle
      if (!isObject(forward.params) || !this.inFlight.has(forward.params.requestId)) return;
      const cancelled = this.inFlight.get(forward.params.requestId);
      this.inFlight.delete(forward.params.requestId);
      this.pending.delete(cancelled);
      forward = { ...forward, params: { ...forward.params, requestId: cancelled } };
    }
    try {
      return await this.up.send(forward);
    } catch (e) {
      if (sentId === undefined) throw e;
      // the upstream could not be sent the request: the client gets a typed error, nothing of it is kept
      const sent = this.pending.get(sentId);
      this.pending.delete(sentId);
      if (sent && this.inFlight.get(sent.id) === sentId) this.inFlight.delete(sent.id);
      this.fail(e);
      return this.down.send({ ...INTERNAL_ERROR, id: sent?.id ?? null });
    }
  }

  /** How many requests wait for the upstream's answer (for tests: a cancelled or failed one is not kept). */
  get waiting() {
    return this.pending.size + this.inFlight.size;
  }

  async fromServer(message) {
    if (isResponse(message) && this.definitionAsks.has(message.id)) {
      // the answer to the proxy's own tools/list: never the client's
      const resolve = this.definitionAsks.get(message.id);
      this.definitionAsks.delete(message.id);
      return resolve("error" in message ? undefined : message.result);
    }
    if (isResponse(message)) {
      const sent = this.pending.get(message.id);
      if (sent === undefined) {
        // an answer to no request of the client's (or answered already): nothing of it goes out, but an error about
        // no request at all (id null: the upstream could not read one)
        if (message.id === null && !("result" in message)) return this.down.send(message);
        console.error("mcpvault-proxy: dropped an upstream response to no pending request");
        return;
      }
      this.pending.delete(message.id);
      this.active = Date.now();
      if (this.inFlight.get(sent.id) === message.id) this.inFlight.delete(sent.id);
      message = { ...message, id: sent.id };
      if (LISTS.has(sent.method) && "result" in message) {
        // filtered with its own request's outcome; a list answer that cannot be filtered (not an object, nested too
        // deeply to read) does not go out: the client gets internal_error, never silence
        let filtered;
        try {
          filtered = isObject(message.result) ? this.policy.filterResult(sent.method, message.result, sent.outcome, sent.request) : undefined;
        } catch (e) {
          console.error("mcpvault-proxy: an upstream list answer could not be filtered:", e?.message ?? e);
        }
        message = filtered !== undefined
          ? { ...message, result: filtered }
          : { ...INTERNAL_ERROR, id: sent.id };
      }
      if (sent.outcome.call_key) {
        await this.policy.complete(sent.outcome, "error" in message ? { error: message.error } : responseOf(message.result));
      }
      if (sent.method === "initialize" && typeof message.result?.protocolVersion === "string") {
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
      maxBodyContainers: config.maxBodyContainers, maxBodyValues: config.maxBodyValues,
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

const INTERNAL_ERROR = { jsonrpc: "2.0", id: null, error: { code: -32603, message: "internal error", data: { code: "internal_error", status: 500 } } };
const invalidRequest = (status, message) => ({ jsonrpc: "2.0", id: null, error: { code: -32600, message, data: { code: "invalid_request", status } } });

function answer(res, status, headers, body) {
  res.status(status);
  for (const [k, v] of Object.entries(headers ?? {})) res.setHeader(k, v);
  res.json(body);
}

/** The Express of the SDK's `createMcpExpressApp` (the SDK depends on it; this package does not). */
function express() {
  const sdk = createRequire(import.meta.url).resolve("@modelcontextprotocol/sdk/server/express.js");
  return createRequire(sdk)("express");
}

/**
 * The HTTP app: the SDK's `createMcpExpressApp` without its JSON body parser (mcpvault-express reads the body), so
 * DNS-rebinding protection on loopback, and every error answer typed (`typedErrors`).
 */
function httpApp(host) {
  const app = express()();
  app.use(typedErrors);
  if (["127.0.0.1", "localhost", "::1"].includes(host)) app.use(localhostHostValidation());
  else if (host === "0.0.0.0" || host === "::") {
    console.warn(`mcpvault-proxy: binding to ${host} without DNS rebinding protection: every request still needs a valid token`);
  }
  return app;
}

/** Whether a JSON-RPC error answer (or a batch of them) names its mcpvault code in `data`. */
const typed = (m) => isObject(m?.error) && isObject(m.error.data) && typeof m.error.data.code === "string";

/**
 * An HTTP error answer (status 400 and up) as every refusal is written: a JSON-RPC error with `data: { code, status }`
 * (`invalid_request`, or `internal_error` with the message `internal error` for 5xx). The SDK's transport and its
 * Host check answer some requests themselves (a verb it does not serve, a wrong Content-Type or Accept, an unknown
 * protocol version) with an untyped -32000 error: their answer is held until it ends and typed; a typed one goes as
 * it came. Answers below 400 (the SSE streams among them) are not touched.
 */
function typedErrors(req, res, next) {
  const { writeHead, write, end } = res;
  let held; // the status and headers of the error answer being held
  const chunks = [];
  const bytes = (chunk, encoding) => (Buffer.isBuffer(chunk) || chunk instanceof Uint8Array ? Buffer.from(chunk) : Buffer.from(String(chunk), typeof encoding === "string" ? encoding : "utf8"));
  const holds = (self, status) => {
    if (held === undefined && !self.headersSent && Number(status) >= 400) held = { status: Number(status), headers: undefined };
    return held !== undefined;
  };
  res.writeHead = function (status, reason, headers) {
    if (!holds(this, status)) return writeHead.apply(this, arguments);
    held.headers = typeof reason === "string" ? headers : reason;
    return this;
  };
  res.write = function (chunk, encoding, cb) {
    if (!holds(this, this.statusCode)) return write.apply(this, arguments);
    if (chunk != null) chunks.push(bytes(chunk, encoding));
    const done = typeof encoding === "function" ? encoding : cb;
    if (typeof done === "function") process.nextTick(done);
    return true;
  };
  res.end = function (chunk, encoding, cb) {
    if (!holds(this, this.statusCode)) return end.apply(this, arguments);
    if (typeof chunk === "function") [chunk, cb] = [undefined, chunk];
    else if (typeof encoding === "function") [encoding, cb] = [undefined, encoding];
    if (chunk != null) chunks.push(bytes(chunk, encoding));
    Object.assign(res, { writeHead, write, end });
    const { status } = held;
    const raw = Buffer.concat(chunks);
    let m;
    try {
      m = JSON.parse(raw.toString("utf8"));
    } catch {
      m = undefined;
    }
    let body = raw;
    if (!(typed(m) || (Array.isArray(m) && m.length > 0 && m.every(typed)))) {
      const internal = status >= 500;
      const message = internal ? "internal error" : typeof m?.error?.message === "string" ? m.error.message : "invalid request";
      body = Buffer.from(JSON.stringify({ jsonrpc: "2.0", id: isObject(m) && (typeof m.id === "string" || typeof m.id === "number") ? m.id : null,
        error: { code: internal ? -32603 : -32600, message, data: { code: internal ? "internal_error" : "invalid_request", status } } }));
    }
    const headers = {};
    const given = held.headers;
    const pairs = Array.isArray(given) ? (Array.isArray(given[0]) ? given : given.flatMap((v, i) => (i % 2 ? [] : [[v, given[i + 1]]]))) : Object.entries(given ?? {});
    for (const [k, v] of pairs) if (!["content-length", "content-type", "transfer-encoding"].includes(String(k).toLowerCase())) headers[k] = v;
    this.removeHeader("Content-Length");
    this.removeHeader("Transfer-Encoding");
    this.setHeader("Content-Type", "application/json");
    this.setHeader("Content-Length", body.length);
    writeHead.call(this, status, headers);
    return end.call(this, body, cb);
  };
  next();
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
  const app = httpApp(host);
  // The HTTP layer answers 401/403 with challenges for tokens that cannot be used at all; the relay behind it, which
  // sees responses, decides each message with the store (revocation, single use with recorded responses, audit).
  // It reads the body itself (no JSON parser in front of it): a body it cannot read (too large, not UTF-8, not JSON)
  // is a typed invalid_request, never repaired, and no parser's error page or log line carries it.
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
  const relays = new Map(); // session id -> its relay
  const open = new Set(); // every relay not closed, its session's id given yet or not (the session caps count these)
  const limits = config.sessions ?? SESSIONS;
  // a session's client gone without its DELETE: its relay (and upstream child) is closed once idle
  const idle = setInterval(() => {
    const before = Date.now() - limits.idleSeconds * 1000;
    for (const r of open) if (r.active < before && r.waiting === 0) r.close();
  }, Math.min(Math.max(limits.idleSeconds * 250, 20), 30_000));
  idle.unref();
  // an initialize past a cap: 429 rate_limited, typed like every refusal (the caller may open one when one closes)
  const full = (res, id, which) => {
    const c = challenge(new McpVaultError("rate_limited", `rate limited: ${which}`), { id });
    const retryAfter = Math.ceil(Math.min(limits.idleSeconds, 60));
    c.body.error.data.retryAfter = retryAfter;
    answer(res, c.status, { ...c.headers, "Retry-After": String(retryAfter) }, c.body);
  };
  app.all(path, auth(), async (req, res) => {
    let opened; // the relay made for this request's initialize
    try {
      const sid = req.headers["mcp-session-id"];
      let relay = typeof sid === "string" ? relays.get(sid) : undefined;
      if (relay && req.method !== "POST") {
        // a request of the session that carries no message (the SSE GET, the DELETE that ends the session): decided
        // by the core like the relay's messages, with the store and the session's subject (another subject's token
        // is session_mismatch, a revoked one revoked)
        const outcome = await relay.admit(req, sid);
        if (!outcome.allowed) return void answer(res, outcome.status, outcome.headers, outcome.response);
        relay.active = Date.now();
      }
      if (!relay) {
        if (sid !== undefined || req.method !== "POST" || !isInitializeRequest(req.body)) {
          // typed like every refusal: invalid_request; an unknown session is 404, as MCP's Streamable HTTP asks (the
          // client starts a new one)
          const status = sid !== undefined ? 404 : 400;
          return void answer(res, status, {}, {
            jsonrpc: "2.0",
            id: null,
            error: { code: -32600, message: sid !== undefined ? "invalid request: unknown session" : "invalid request: no session: send initialize first",
              data: { code: "invalid_request", status } },
          });
        }
        // the initialize is decided (with the store) before anything is made for it: a refused one gets no session
        // and no upstream connection or child
        const outcome = await policy.decide(req.body, req.auth, undefined, undefined, { requestInfo: { headers: req.headers } });
        if (!outcome.allowed) return void answer(res, outcome.status, outcome.headers, outcome.response);
        const subject = outcome.facts?.subject;
        if (open.size >= limits.max) return void full(res, req.body.id, "the proxy has its most sessions open");
        let own = 0;
        for (const r of open) if (r.subject === subject) own += 1;
        if (own >= limits.perSubject) return void full(res, req.body.id, "this subject has its most sessions open");
        const transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => relays.set(id, relay),
        });
        relay = opened = new Relay(policy, transport, upstreamTransport(config.upstream), undefined,
          { id: req.body.id, method: req.body.method, outcome });
        relay.onclose = () => {
          open.delete(relay);
          if (transport.sessionId) relays.delete(transport.sessionId);
        };
        open.add(relay);
        await relay.start();
      }
      await relay.down.handleRequest(req, res, req.body);
    } catch (e) {
      console.error("mcpvault-proxy:", e?.stack ?? e);
      if (!res.headersSent) answer(res, 500, {}, INTERNAL_ERROR);
    } finally {
      // the transport did not open the session (it refused the request: its Accept, its Content-Type), or the
      // upstream did not start: nothing is kept for it
      if (opened && !opened.down.sessionId) await opened.close();
    }
  });
  // a path that is not the endpoint, and an error no handler answered: typed too (never Express's HTML page, whose
  // stack trace goes to stderr)
  app.use((req, res) => answer(res, 404, {}, invalidRequest(404, "invalid request: not an MCP endpoint")));
  app.use((err, req, res, next) => {
    const status = Number.isInteger(err?.status) && err.status >= 400 && err.status < 500 ? err.status : 500;
    // its kind only: a parser's error can quote the body, and the body the token
    console.error(`mcpvault-proxy: request failed: ${err?.type ?? err?.name ?? "error"}`);
    // an answer already begun: ended here, not handed to Express's handler (which logs the whole error)
    if (res.headersSent) return void res.destroy();
    answer(res, status, {}, status === 500 ? INTERNAL_ERROR : invalidRequest(status, "invalid request"));
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
      clearInterval(idle);
      await Promise.allSettled([...open].map((r) => r.close()));
      server.closeAllConnections?.();
      await new Promise((res) => server.close(() => res()));
      await store?.close();
    },
  };
}
