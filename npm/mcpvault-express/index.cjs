"use strict";
// Express 4/5 (and Connect, and plain node:http) middleware over the mcpvault gate.
// Every decision is the core guard's (mcpvault's Guard): this file reads the request, hands it over, and writes the
// guard's answer.
const { Guard, storeOptionsError, metricsText } = require("mcpvault");

const OPTIONS = ["publicKeyHex", "audience", "onDecision", "onSoftRule", "cache", "now", "realm", "resourceMetadata", "maxBodyBytes",
  "store", "retryWindow", "deferSpend", "mappings", "toolMappings", "rules", "openResources", "openPrompts", "innerGuard",
  "toolDefinitions", "maxBodyContainers", "maxBodyValues"];
const DEFAULT_CACHE = 1024;
const DEFAULT_MAX_BODY = 4 * 1024 * 1024;

function fail(message) {
  return new TypeError(`mcpvault-express: ${message}`);
}

function validate(options) {
  if (options == null || typeof options !== "object") throw fail("options must be an object");
  for (const k of Object.keys(options)) if (!OPTIONS.includes(k)) throw fail(`unknown option ${JSON.stringify(k)}`);
  const o = { ...options };
  if (typeof o.publicKeyHex !== "string" || o.publicKeyHex === "") throw fail("publicKeyHex is required (the issuer's Ed25519 public key, hex)");
  if (o.audience !== undefined && (typeof o.audience !== "string" || o.audience === "")) throw fail("audience must be a non-empty string");
  if (o.onDecision !== undefined && typeof o.onDecision !== "function") throw fail("onDecision must be a function");
  if (o.onSoftRule !== undefined && typeof o.onSoftRule !== "function") throw fail("onSoftRule must be a function");
  if (o.now !== undefined && typeof o.now !== "function") throw fail("now must be a function returning unix seconds");
  if (o.realm !== undefined && typeof o.realm !== "string") throw fail("realm must be a string");
  if (o.resourceMetadata !== undefined && typeof o.resourceMetadata !== "string") throw fail("resourceMetadata must be a URL string");
  const cache = o.cache ?? true;
  if (cache === true) o.cache = DEFAULT_CACHE;
  else if (cache === false) o.cache = 0;
  else if (!Number.isSafeInteger(cache) || cache < 0) throw fail("cache must be true, false or a number of entries");
  const max = o.maxBodyBytes ?? DEFAULT_MAX_BODY;
  if (!Number.isSafeInteger(max) || max <= 0) throw fail("maxBodyBytes must be a positive integer");
  o.maxBodyBytes = max;
  const storeError = storeOptionsError(o);
  if (storeError) throw fail(storeError);
  if (o.deferSpend !== undefined && typeof o.deferSpend !== "boolean") throw fail("deferSpend must be true or false");
  if (o.innerGuard !== undefined && typeof o.innerGuard !== "boolean") throw fail("innerGuard must be true or false");
  // an mcpvault layer behind (withMcpVault, the proxy's relay) decides each message again; deferSpend says there is one
  o.inner = o.innerGuard ?? o.deferSpend === true;
  if (o.deferSpend === true && !o.inner) throw fail("deferSpend needs the layer that spends behind it (innerGuard)");
  const defs = o.toolDefinitions;
  if (defs !== undefined && typeof defs !== "function" && (defs === null || typeof defs !== "object" || Array.isArray(defs))) {
    throw fail("toolDefinitions must be a function or an object of tool names to definition hashes");
  }
  if (defs !== undefined && o.inner) throw fail("toolDefinitions: with innerGuard the layer behind checks pinned tools");
  for (const k of ["openResources", "openPrompts"]) {
    if (o[k] !== undefined && typeof o[k] !== "boolean") throw fail(`${k} must be true or false`);
  }
  return o;
}

/**
 * The request's headers as the guard reads them. Node keeps only the first of repeated Authorization headers (it
 * joins repeated custom ones with ", "): the guard sees them all, joined the same way, as on every other host (two
 * Bearer tokens are refused, never decided by whichever came first).
 */
function headersOf(req) {
  const raw = req.rawHeaders;
  if (!Array.isArray(raw)) return req.headers;
  const auth = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i].length === 13 && raw[i].toLowerCase() === "authorization") auth.push(raw[i + 1]);
  return auth.length > 1 ? { ...req.headers, authorization: auth.join(", ") } : req.headers;
}

/** The MCP session a request names (its `Mcp-Session-Id`), or undefined. */
function sessionIdOf(req) {
  const sid = req.headers["mcp-session-id"];
  return typeof sid === "string" && sid !== "" ? sid : undefined;
}

/** A header's value among the headers given to `res.writeHead` (an object, or a flat or paired array). */
function headerIn(headers, name) {
  if (Array.isArray(headers)) {
    const pairs = Array.isArray(headers[0]) ? headers : headers.flatMap((v, i) => (i % 2 ? [] : [[v, headers[i + 1]]]));
    return pairs.find(([k]) => String(k).toLowerCase() === name)?.[1];
  }
  if (headers && typeof headers === "object") {
    for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v;
  }
  return undefined;
}

/** The MCP sessions (Streamable HTTP) the middleware has seen opened, kept at most (the oldest forgotten first); of
 * them, at most SESSIONS_PER_SUBJECT of one subject (a subject holding that many loses its own oldest, so its further
 * initializes push out no other subject's session). */
const SESSIONS_KEPT = 10_000;
const SESSIONS_PER_SUBJECT = 1_000;

/** The sessions a middleware saw opened: each one's subject (what the core's session book says to keep and forget). */
class SessionBook {
  constructor(kept = SESSIONS_KEPT, perSubject = SESSIONS_PER_SUBJECT) {
    this.kept = kept;
    this.perSubject = perSubject;
    this.subjects = new Map(); // session id -> subject, oldest first
    this.bySubject = new Map(); // subject -> its session ids, oldest first
  }

  has(sid) {
    return this.subjects.has(sid);
  }

  get(sid) {
    return this.subjects.get(sid);
  }

  forget(sid) {
    const subject = this.subjects.get(sid);
    if (subject === undefined) return;
    this.subjects.delete(sid);
    const own = this.bySubject.get(subject);
    own.delete(sid);
    if (own.size === 0) this.bySubject.delete(subject);
  }

  bind(sid, subject) {
    if (typeof sid !== "string" || sid === "" || typeof subject !== "string") return;
    this.forget(sid);
    const own = this.bySubject.get(subject);
    if (own !== undefined && own.size >= this.perSubject) this.forget(own.values().next().value);
    else if (this.subjects.size >= this.kept) this.forget(this.subjects.keys().next().value);
    this.subjects.set(sid, subject);
    if (!this.bySubject.has(subject)) this.bySubject.set(subject, new Set());
    this.bySubject.get(subject).add(sid);
  }
}

/** Whether the request announces a body (Express 4's body parser sets `req.body = {}` even when there is none). */
function declared(req) {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/** Whether the request may carry a body: announced, or one of unknown length. */
function hasContent(req) {
  return declared(req) || lengthUnknown(req);
}

/** The methods that carry no body here (MCP's GET stream, its session DELETE). */
const BODILESS = new Set(["GET", "HEAD", "DELETE", "OPTIONS"]);

/**
 * HTTP/2 (and 3) have no Transfer-Encoding and make Content-Length optional: a POST's body is there until the stream
 * ends. Deciding such a POST as body-less let its handler (the MCP SDK's transport) read and run a tools/call
 * undecided. (A GET is decided at once, whether or not its client ended the stream.)
 */
function lengthUnknown(req) {
  return req.httpVersionMajor >= 2 && req.headers["content-length"] === undefined && !BODILESS.has(req.method);
}

function readJson(req, max) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    const onData = (c) => {
      size += c.length;
      if (size > max) {
        // Answer, then drop the rest of the body and the connection.
        req.off("data", onData);
        req.resume();
        reject(Object.assign(new Error("body too large"), { close: true, bodyError: "too_large" }));
      } else chunks.push(c);
    };
    req.on("data", onData);
    req.on("error", reject);
    req.on("end", () => {
      let text;
      try {
        // fatal: bytes that are not UTF-8 are refused, not silently replaced (the check and the tool would see
        // a different argument than the client sent)
        text = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
      } catch {
        return reject(Object.assign(new Error("body is not UTF-8"), { bodyError: "not_utf8" }));
      }
      // the guard parses the text (and refuses what is not JSON or nested too deeply)
      resolve(text.trim() === "" ? undefined : text);
    });
  });
}

/**
 * Creates the middleware factory. `auth()` authorizes whatever each JSON-RPC message of the body asks (for
 * `tools/call` its tool and arguments; other methods need a valid token only); `auth("tool")` serves one tool.
 * Options are checked here: a bad key throws at start-up.
 */
function createMcpVaultMiddleware(options) {
  const o = validate(options);
  const guards = new Map();
  // Each MCP session's subject: the subject of the token whose initialize opened it, bound from the session id
  // the server's answer gives (never from an id a client names). Every request naming a session (a message, the
  // SSE GET, the DELETE) is decided with its subject: another subject's token is session_mismatch (the core's), so
  // a session id read from a log takes no stream and ends no session. A request naming a session this middleware
  // did not see opened (or forgot: it keeps the newest SESSIONS_KEPT) is refused 404, as an unknown session is: the
  // client opens another. The core decides all this (sessionBook: SCHEMA.md, "Sessions"); this map only keeps.
  const sessions = new SessionBook();
  let guard;
  try {
    guard = makeGuard(undefined);
  } catch (e) {
    // the core names what is wrong: the key, or the policy (mappings, toolMappings, rules)
    throw fail(e.code === "invalid_key" ? `publicKeyHex: ${e.message}` : e.message);
  }
  function makeGuard(tool) {
    return new Guard({
      publicKey: o.publicKeyHex, audience: o.audience, store: o.store, retryWindow: o.retryWindow, tool,
      deferSpend: o.deferSpend, realm: o.realm, resourceMetadata: o.resourceMetadata, cache: o.cache, now: o.now,
      mappings: o.mappings, toolMappings: o.toolMappings, rules: o.rules,
      openResources: o.openResources, openPrompts: o.openPrompts,
      maxBodyContainers: o.maxBodyContainers, maxBodyValues: o.maxBodyValues,
      // innerGuard: withMcpVault behind this middleware decides each message again: hand on the proofs and approvals
      // spent here and the dry-run tool (it answers it), and leave pinned tools to it (it knows the definitions).
      // Alone (the default), this middleware is the last guard: the dry-run tool is refused and pinned tools are
      // checked against toolDefinitions (none given: refused)
      forwardProofs: o.inner,
      deferPins: o.inner,
    });
  }
  function guardOf(tool) {
    if (tool === undefined) return guard;
    if (!guards.has(tool)) guards.set(tool, makeGuard(tool));
    return guards.get(tool);
  }

  function report(g, outcome) {
    if (!o.onDecision && !o.onSoftRule) return;
    for (const d of g.decisionsOf(outcome)) {
      // onSoftRule: each allowed decision whose soft rules fired
      const hooks = [["onDecision", o.onDecision], ["onSoftRule", d.allowed && d.softRules?.length > 0 && o.onSoftRule]];
      for (const [name, hook] of hooks) {
        if (!hook) continue;
        try {
          hook(d);
        } catch (e) {
          // A hook observes decisions; it cannot change one.
          console.error(`mcpvault-express: ${name} threw:`, e);
        }
      }
    }
  }

  function send(res, status, headers, body) {
    res.statusCode = status;
    res.setHeader("Content-Type", "application/json");
    for (const [k, v] of Object.entries(headers ?? {})) res.setHeader(k, v);
    res.end(JSON.stringify(body));
  }

  /** Decides a request: without a promise when nothing asynchronous is needed (no store), else a promise. */
  function decide(req, res, next, tool, parts) {
    const g = guardOf(tool);
    const sid = sessionIdOf(req);
    // the core refuses a session this middleware does not keep (404) and says what to keep and forget
    const outcome = g.decideNow({ body: parts.body, bodyError: parts.bodyError, httpMethod: req.method, headers: headersOf(req),
      toolDefinitions: o.toolDefinitions, sessionBook: true, sessionSubject: sid === undefined ? undefined : sessions.get(sid) });
    if (typeof outcome.then === "function") return outcome.then((o) => answer(g, req, res, next, parts, o));
    answer(g, req, res, next, parts, outcome);
    return undefined;
  }

  function answer(g, req, res, next, parts, outcome) {
    report(g, outcome);
    if (!outcome.allowed) {
      if (parts.close) res.setHeader("Connection", "close");
      return send(res, outcome.status, outcome.headers, outcome.response);
    }
    if (outcome.forward == null && outcome.answers.length > 0) {
      // every message was answered by the guard (a retry answered with its recorded response)
      return send(res, 200, {}, Array.isArray(parts.parsed) ? outcome.answers : outcome.answers[0]);
    }
    const f = g.factsOf(outcome);
    req.mcpvaultFacts = f;
    const ends = outcome.ends_session;
    if (ends !== undefined) {
      // the session ends: forgotten once the server says so
      res.on("finish", () => {
        if (res.statusCode < 300) sessions.forget(ends);
      });
    }
    const opener = outcome.opens_session;
    if (opener !== undefined) {
      // the session the transport opens for this initialize: its id is in the answer's headers
      const writeHead = res.writeHead;
      res.writeHead = function (status, ...rest) {
        res.writeHead = writeHead;
        if (Number(status) < 300) sessions.bind(res.getHeader("mcp-session-id") ?? headerIn(rest.find((x) => typeof x === "object"), "mcp-session-id"), opener);
        return writeHead.call(this, status, ...rest);
      };
    }
    // The MCP SDK's AuthInfo: StreamableHTTPServerTransport hands req.auth to tool handlers as extra.authInfo.
    // mcpvaultReplayChecked tells withMcpVault that this request's single-use nonces were spent here.
    // scopes: the granted tools, then the granted scopes (a handler can check either)
    req.auth = { token: outcome.token, clientId: f.subject, scopes: f.scopes ? f.tools.concat(f.scopes) : f.tools.slice(), expiresAt: f.expiresAt,
      extra: { mcpvault: f, mcpvaultReplayChecked: Boolean(o.store) && !o.deferSpend } };
    // the body handed on is the guard's, without the token (a one-tool route's plain arguments as they came when the
    // guard removed nothing from them: forward null)
    if (outcome.forward != null) req.body = outcome.forward;
    else if (parts.parsed !== undefined) req.body = parts.parsed;
    next();
  }

  return function auth(tool) {
    if (tool !== undefined && (typeof tool !== "string" || tool === "")) throw fail("auth(tool): tool must be a non-empty string");
    if (tool !== undefined) {
      try {
        guardOf(tool);
      } catch (e) {
        throw fail(`auth(tool): ${e.message}`);
      }
    }
    const failed = (res, e) => {
      console.error("mcpvault-express:", e);
      if (!res.headersSent) send(res, 500, {}, { jsonrpc: "2.0", id: null, error: { code: -32603, message: "internal error", data: { code: "internal_error", status: 500 } } });
    };
    const run = (req, res, next, parts) => {
      try {
        const pending = decide(req, res, next, tool, parts);
        if (pending !== undefined) pending.catch((e) => failed(res, e));
      } catch (e) {
        failed(res, e);
      }
    };
    return function mcpvaultMiddleware(req, res, next) {
      // a body parser that ran (Express 4's sets req.body = {} even when it read nothing) — unless it left an
      // HTTP/2 stream of unknown length unread (body-parser reads only what Content-Length or Transfer-Encoding
      // announce), which is read here
      if (req.body !== undefined && !(lengthUnknown(req) && !req.readableEnded)) {
        const body = hasContent(req) ? req.body : undefined;
        return void run(req, res, next, { body, parsed: body });
      }
      if (!hasContent(req)) return void run(req, res, next, {});
      if (req.readableEnded) {
        // the stream was read to its end before this middleware, and req.body not set: an HTTP/2 stream that ended
        // empty has no body; an announced body went elsewhere (req.rawBody, …), where the handler may read what
        // nothing decided — refused, never decided as body-less
        if (!declared(req)) return void run(req, res, next, {});
        return void failed(res, new Error("the request body was read before mcpvault-express without setting req.body: mount the middleware before it, or have it set req.body"));
      }
      readJson(req, o.maxBodyBytes).then(
        (text) => {
          let parsed;
          try {
            parsed = text === undefined ? undefined : JSON.parse(text);
          } catch {
            parsed = undefined; // the guard refuses it
          }
          req.body = parsed;
          return run(req, res, next, { body: text, parsed });
        },
        (e) => run(req, res, next, { bodyError: e.bodyError ?? "not_json", close: e.close }),
      );
    };
  };
}

/**
 * A handler (Express, Connect or node:http) that answers with the Prometheus text exposition (0.0.4) of every
 * mcpvault guard's decisions in this process: `mcpvault_decisions_total{decision,code,method}`,
 * `mcpvault_authorization_duration_seconds{cache_hit,decision}` (a histogram), `mcpvault_cache_hits_total`,
 * `mcpvault_cache_misses_total`. Counting starts when the first handler is created. Mount it where only the scraper
 * reaches it: `app.get("/metrics", metricsHandler())`.
 */
function metricsHandler() {
  metricsText(); // turns the registry on
  return function mcpvaultMetrics(req, res) {
    res.statusCode = 200;
    res.setHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    res.end(req.method === "HEAD" ? undefined : metricsText());
  };
}

module.exports = { createMcpVaultMiddleware, metricsHandler, _SessionBook: SessionBook };
