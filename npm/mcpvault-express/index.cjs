"use strict";
// Express 4/5 (and Connect, and plain node:http) middleware over the mcpvault gate.
const { MCPVault, McpVaultError, findToken, authorizeBody, stripToken, challenge, assertPublicKey, storeOptionsError } = require("mcpvault");

const OPTIONS = ["publicKeyHex", "audience", "onDecision", "cache", "now", "realm", "resourceMetadata", "maxBodyBytes",
  "revocationStore", "replayStore", "auditStore", "retryWindow"];
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
  return o;
}

/** Whether the request carries a body (Express 4's body parser sets `req.body = {}` even when it does not). */
function hasContent(req) {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
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
        reject(Object.assign(new Error("body too large"), { close: true }));
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
        return reject(new Error("body is not UTF-8"));
      }
      if (text.trim() === "") return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new Error("body is not JSON"));
      }
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
  const vault = new MCPVault({ cache: o.cache, now: o.now });
  try {
    assertPublicKey(o.publicKeyHex, vault);
  } catch (e) {
    throw fail(`publicKeyHex: ${e.message}`);
  }
  const gate = {
    publicKey: o.publicKeyHex, audience: o.audience, vault, revocationStore: o.revocationStore,
    replayStore: o.replayStore, auditStore: o.auditStore, retryWindow: o.retryWindow,
  };
  const answer = { realm: o.realm, resourceMetadata: o.resourceMetadata };

  function report(decision) {
    if (!o.onDecision) return;
    try {
      o.onDecision(decision);
    } catch (e) {
      // A hook observes decisions; it cannot change one.
      console.error("mcpvault-express: onDecision threw:", e);
    }
  }

  function refuse(res, error, id) {
    const c = challenge(error, { ...answer, id });
    res.statusCode = c.status;
    for (const [k, v] of Object.entries(c.headers)) res.setHeader(k, v);
    res.end(JSON.stringify(c.body));
  }

  async function decide(req, res, next, tool, body) {
    const found = findToken(req, body);
    const out = await authorizeBody(found?.token, body, { ...gate, tool, httpMethod: req.method });
    const call = out.call ?? {};
    const base = { method: call.method ?? null, tool: call.tool ?? null, requestId: out.id ?? null, tokenSource: found?.source ?? null };
    if (out.error) {
      const c = challenge(out.error);
      report({ allowed: false, code: c.body.error.data.code, status: c.status, ...base, subject: null, issuer: null,
        message: out.error.message, detail: out.error.detail });
      return refuse(res, out.error, out.id);
    }
    const f = out.facts;
    report({ allowed: true, code: null, status: 200, ...base, subject: f.subject, issuer: f.issuer, facts: f });
    req.mcpvaultFacts = f;
    // The MCP SDK's AuthInfo: StreamableHTTPServerTransport hands req.auth to tool handlers as extra.authInfo.
    // replayChecked tells withMcpVault that this request's single-use nonces were spent here.
    req.auth = { token: found.token, clientId: f.subject, scopes: f.tools, expiresAt: f.expiresAt,
      extra: { mcpvault: f, mcpvaultReplayChecked: Boolean(o.replayStore) } };
    stripToken(body, found.token);
    next();
  }

  return function auth(tool) {
    if (tool !== undefined && (typeof tool !== "string" || tool === "")) throw fail("auth(tool): tool must be a non-empty string");
    const run = (req, res, next, body) => decide(req, res, next, tool, body).catch((e) => {
      console.error("mcpvault-express:", e);
      if (!res.headersSent) refuse(res, new McpVaultError("internal_error", "internal error"), null);
    });
    return function mcpvaultMiddleware(req, res, next) {
      if (req.body !== undefined) return void run(req, res, next, hasContent(req) ? req.body : undefined);
      if (!hasContent(req)) return void run(req, res, next, undefined);
      readJson(req, o.maxBodyBytes).then(
        (body) => {
          req.body = body;
          return run(req, res, next, body);
        },
        (e) => {
          if (e.close) res.setHeader("Connection", "close");
          refuse(res, invalid(e.message), null);
        },
      );
    };
  };
}

function invalid(message) {
  return new McpVaultError("invalid_request", `invalid request: ${message}`);
}

module.exports = { createMcpVaultMiddleware };
