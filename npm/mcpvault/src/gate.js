// The runtime-neutral gate: where an HTTP/MCP server meets the vault. Written
// once; scripts/build.mjs appends it to api.js in every entry (Node, browsers,
// Deno, workers). It uses no Node or DOM API; `challengeResponse` and
// `authorizeFetch` use the global fetch `Response`/`Request` of the runtime.
function makeGate(MCPVault, McpVaultError, callKey) {
  /** Where a token is looked for, in this order. */
  const TOKEN_HEADER = "x-mcpvault-token";
  const META_KEYS = ["token", "mcpvault/token"];
  /** The dry-run tool of mcpvault-mcp: a reserved name, callable with any valid token (it runs nothing). */
  const CHECK_TOOL = "mcpvault.check";

  /** HTTP status of each refusal code (SCHEMA.md, "HTTP and JSON-RPC"). */
  const STATUS = {
    missing_token: 401,
    malformed_token: 401,
    bad_signature: 401,
    expired: 401,
    revoked: 401,
    replayed: 401,
    limits_exceeded: 401,
    tool_not_allowed: 403,
    argument_not_allowed: 403,
    wrong_audience: 403,
    depth_exceeded: 403,
    check_failed: 403,
    invalid_request: 400,
    invalid_key: 500,
    internal_error: 500,
  };
  /** JSON-RPC error code per HTTP status (implementation-defined server errors, -32000..-32099). */
  const RPC_CODE = { 400: -32600, 401: -32011, 403: -32013, 500: -32603 };

  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const refusal = (code, message) => new McpVaultError(code, message);

  /** One header of a Node/Express request (plain object) or a fetch Request (Headers). */
  function header(request, name) {
    const h = request?.headers;
    if (h == null || typeof h !== "object") return undefined;
    let v;
    if (typeof h.get === "function") v = h.get(name);
    else {
      v = h[name];
      if (v === undefined) {
        const key = Object.keys(h).find((k) => k.toLowerCase() === name);
        v = key === undefined ? undefined : h[key];
      }
    }
    if (Array.isArray(v)) v = v[0];
    return typeof v === "string" ? v : undefined;
  }

  /** The JSON-RPC messages of a body: an object, a batch, or none (not JSON-RPC). */
  function messagesOf(body) {
    if (Array.isArray(body)) return body.length > 0 && body.every(isJsonRpc) ? body : null;
    return isJsonRpc(body) ? [body] : null;
  }
  function isJsonRpc(m) {
    return isObject(m) && m.jsonrpc === "2.0";
  }

  function metaToken(message) {
    const meta = isObject(message) && isObject(message.params) ? message.params._meta : undefined;
    if (!isObject(meta)) return undefined;
    for (const k of META_KEYS) if (typeof meta[k] === "string" && meta[k] !== "") return { token: meta[k], source: `_meta.${k}` };
    return undefined;
  }

  /** `{ token, source }` or null; source is "header", "bearer" or "_meta.token"/"_meta.mcpvault/token". */
  function findToken(request, body = request?.body) {
    const own = header(request, TOKEN_HEADER)?.trim();
    if (own) return { token: own, source: "header" };
    const m = /^Bearer +(\S+) *$/i.exec(header(request, "authorization") ?? "");
    if (m) return { token: m[1], source: "bearer" };
    for (const message of messagesOf(body) ?? []) {
      const found = metaToken(message);
      if (found) return found;
    }
    return null;
  }

  /**
   * The token a request presents: the `X-MCPVault-Token` header, then `Authorization: Bearer`, then the JSON-RPC
   * body's `params._meta.token` or `params._meta["mcpvault/token"]`. `request` is a Node/Express request or a fetch
   * `Request`; `body` defaults to `request.body` (a parsed JSON body). Returns the token or null.
   */
  function extractToken(request, body) {
    return findToken(request, body === undefined ? request?.body : body)?.token ?? null;
  }

  /**
   * The call a JSON-RPC message asks for: `tools/call` → its tool and arguments; any other request or
   * notification → its method (a valid token, no tool grant); a response → method "jsonrpc/response"; a call of
   * the reserved dry-run tool `mcpvault.check` → method "mcpvault/check" (a valid token, no grant).
   */
  function callOf(message) {
    if (!isJsonRpc(message)) throw refusal("invalid_request", "invalid request: not a JSON-RPC 2.0 message");
    if (message.method === undefined) {
      if ("result" in message || "error" in message) return { method: "jsonrpc/response" };
      throw refusal("invalid_request", "invalid request: a JSON-RPC message needs a method or a result");
    }
    if (typeof message.method !== "string" || message.method === "") {
      throw refusal("invalid_request", "invalid request: method must be a non-empty string");
    }
    if (message.method !== "tools/call") return { method: message.method };
    const p = message.params;
    if (!isObject(p) || typeof p.name !== "string" || p.name === "") {
      throw refusal("invalid_request", "invalid request: tools/call needs params.name");
    }
    if (p.name === CHECK_TOOL) return { method: "mcpvault/check" };
    return { method: "tools/call", tool: p.name, arguments: p.arguments ?? {} };
  }

  let sharedVault = null;
  /** The vault used when options.vault is not given: created on first use, caching 1,024 chains. */
  function defaultVault() {
    sharedVault ??= new MCPVault({ cache: 1024 });
    return sharedVault;
  }

  function asError(e) {
    return e instanceof McpVaultError ? e : refusal("internal_error", "internal error");
  }

  /**
   * Authorizes one call. `call` is a JSON-RPC message or `{ method?, tool, arguments? }`; options: `publicKey`
   * (hex, required), `audience`, `now` (unix seconds), `vault` (an MCPVault; default a shared caching one).
   * Returns the authorized facts, or an McpVaultError (returned, not thrown) — never an allow by accident.
   */
  function authorizeCall(token, call, options = {}) {
    try {
      if (typeof token !== "string" || token === "") return refusal("missing_token", "no mcpvault token was presented");
      const c = isJsonRpc(call) ? callOf(call) : call;
      if (!isObject(c)) return refusal("invalid_request", "invalid request: call must be an object");
      const vault = options.vault ?? defaultVault();
      return vault.verify(token, options.publicKey, {
        method: c.method ?? "tools/call",
        tool: c.tool,
        arguments: c.arguments ?? {},
        audience: options.audience,
        now: options.now,
      });
    } catch (e) {
      return asError(e);
    }
  }

  /**
   * authorizeCall, then what the verifier remembers (SCHEMA.md, "Revocation, replay, audit"): a token whose chain
   * holds an id `options.revocationStore` revoked is `revoked`; a single-use token is spent in
   * `options.replayStore` by a tools/call (`replayed` when another call spent it, or when there is no replay store;
   * other methods neither spend it nor are refused for it);
   * every decision is appended to `options.auditStore`. `options.requestId` (default: the message's id) tells a
   * retry of the same request from a replay, within `options.retryWindow` seconds (default 30). `options.replayChecked`:
   * an outer layer (the middleware) already spent this call's nonces. Resolves to the facts
   * or an McpVaultError; a failing store is `internal_error` — never an allow.
   */
  async function authorizeWithState(token, call, options = {}) {
    let out = authorizeCall(token, call, options);
    let c = {};
    try {
      c = isJsonRpc(call) ? callOf(call) : call ?? {};
    } catch {
      // authorizeCall has already refused it
    }
    const requestId = options.requestId ?? (isJsonRpc(call) && call.id != null ? call.id : null);
    const now = options.now ?? (options.vault ?? defaultVault())._time();
    const fail = (code, message, detail) => new McpVaultError(code, message, null, null, detail);
    try {
      if (!(out instanceof McpVaultError) && options.revocationStore) {
        const id = await options.revocationStore.firstRevoked(out.revocationIds);
        if (id) out = fail("revoked", "token has been revoked", `revocation id ${id} is revoked`);
      }
      // Only a tools/call spends a single-use token: initialize, tools/list and notifications do not use it up.
      if (!(out instanceof McpVaultError) && out.nonces?.length && (c.method ?? "tools/call") === "tools/call" && !options.replayChecked) {
        if (!options.replayStore) {
          out = fail("replayed", "single-use token was already used", "no replay store: a single-use token is refused");
        } else {
          const key = callKey(requestId == null ? "" : String(requestId), c.method ?? "tools/call", c.tool, c.arguments ?? {});
          const d = await options.replayStore.spend(out.nonces, key, { now, until: out.expiresAt, retryWindow: options.retryWindow ?? 30 });
          if (d.result === "replayed") out = fail("replayed", "single-use token was already used", `nonce ${d.nonce} was already spent`);
        }
      }
    } catch (e) {
      out = fail("internal_error", "internal error", `store: ${e?.message ?? e}`);
    }
    return record(options, out, c, requestId, now);
  }

  /** What is wrong with the store options of authorizeWithState (`revocationStore`, `replayStore`, `auditStore`,
   * `retryWindow`), or null: the middleware and withMcpVault check them when they are created. */
  function storeOptionsError(options) {
    const needs = { revocationStore: "firstRevoked", replayStore: "spend", auditStore: "appendAudit" };
    for (const [k, m] of Object.entries(needs)) {
      if (options[k] !== undefined && typeof options[k]?.[m] !== "function") return `${k} must have ${m}()`;
    }
    if (options.retryWindow !== undefined && !(Number.isSafeInteger(options.retryWindow) && options.retryWindow >= 0)) {
      return "retryWindow must be seconds";
    }
    return null;
  }

  /** Appends the decision to options.auditStore (if any); an allow that cannot be recorded is refused. */
  async function record(options, out, c, requestId, now) {
    if (!options.auditStore) return out;
    const ok = !(out instanceof McpVaultError);
    // What the caller chose (method, tool, request id) is cut to 256 characters: a refused request cannot grow the log.
    const cut = (v) => (v == null ? null : String(v).slice(0, 256));
    const entry = {
      time: now, allowed: ok, code: ok ? null : out.code, method: cut(c?.method ?? "tools/call"),
      tool: cut(c?.tool), subject: ok ? out.subject : null, issuer: ok ? out.issuer : null,
      revocation_ids: ok ? out.revocationIds : [], request_id: cut(requestId),
    };
    try {
      await options.auditStore.appendAudit(entry);
    } catch (e) {
      if (ok) return new McpVaultError("internal_error", "internal error", null, null, `audit store: ${e?.message ?? e}`);
    }
    return out;
  }

  /**
   * Authorizes what an HTTP body asks, for one token. A JSON-RPC body (one message or a batch): every message is
   * authorized (see callOf). With `options.tool`, the route serves that one tool: a JSON-RPC tools/call must name it,
   * and a body that is not JSON-RPC is the tool's arguments (none: `{}`). With no body and no tool, the token must be
   * valid (method `http/<METHOD>`). Each message goes through authorizeWithState (options may carry the stores;
   * without a replay store a single-use token's tools/call is refused). Resolves to `{ facts, call, id }` or
   * `{ error, call, id }`.
   */
  function planBody(body, options) {
    const messages = messagesOf(body);
    const calls = [];
    let firstId = null;
    try {
      if (messages) {
        for (const m of messages) {
          const c = callOf(m);
          const id = typeof m.id === "string" || typeof m.id === "number" ? m.id : null;
          if (firstId === null && id !== null) firstId = id;
          if (options.tool != null && c.method === "tools/call" && c.tool !== options.tool) {
            throw refusal("invalid_request", `invalid request: this endpoint serves tool ${JSON.stringify(options.tool)} only`);
          }
          calls.push({ ...c, id });
        }
      } else if (options.tool != null) {
        if (body !== undefined && body !== null && body !== "" && !isObject(body)) {
          throw refusal("invalid_request", "invalid request: the body must be a JSON object of tool arguments");
        }
        calls.push({ method: "tools/call", tool: options.tool, arguments: isObject(body) ? body : {}, id: null });
      } else if (body === undefined || body === null || body === "") {
        calls.push({ method: `http/${options.httpMethod ?? "POST"}`, id: null });
      } else {
        throw refusal("invalid_request", "invalid request: the body is not a JSON-RPC 2.0 message");
      }
    } catch (e) {
      return { error: asError(e), call: calls[calls.length - 1] ?? null, id: firstId };
    }
    return { calls, id: firstId };
  }

  function bodyOutcome(plan, results) {
    let facts = null;
    for (const [i, out] of results.entries()) {
      if (out instanceof McpVaultError) return { error: out, call: plan.calls[i], id: plan.id };
      // The first tools/call decides the facts handed on; otherwise the first message.
      if (facts === null || (facts.tool === undefined && out.tool !== undefined)) facts = out;
    }
    return { facts, call: plan.calls.find((c) => c.tool !== undefined) ?? plan.calls[0], id: plan.id };
  }

  async function authorizeBody(token, body, options = {}) {
    const plan = planBody(body, options);
    if (plan.error) {
      const now = options.now ?? (options.vault ?? defaultVault())._time();
      await record(options, plan.error, plan.call, plan.id, now);
      return plan;
    }
    const results = [];
    for (const c of plan.calls) {
      const out = await authorizeWithState(token, c, { ...options, requestId: c.id });
      results.push(out);
      if (out instanceof McpVaultError) break;
    }
    return bodyOutcome(plan, results);
  }

  /** Removes the token from a message's `_meta` (and any top-level argument equal to it), in place. */
  function stripToken(message, token) {
    for (const m of messagesOf(message) ?? []) {
      const p = m.params;
      if (!isObject(p)) continue;
      if (isObject(p._meta)) {
        for (const k of META_KEYS) delete p._meta[k];
        if (Object.keys(p._meta).length === 0) delete p._meta;
      }
      if (token && isObject(p.arguments)) {
        for (const [k, v] of Object.entries(p.arguments)) if (v === token) delete p.arguments[k];
      }
    }
    return message;
  }

  function quoted(v) {
    return `"${String(v).replace(/[\\"]/g, "\\$&").replace(/[^\x20-\x7e]/g, "?")}"`;
  }

  /** The HTTP status of a code (500 for one this version does not know). */
  function statusOf(code) {
    return STATUS[code] ?? 500;
  }

  /**
   * The HTTP answer to a refusal: `{ status, headers, body }` with `body` a JSON-RPC error object
   * `{ jsonrpc, id, error: { code, message, data: { code, status } } }` that carries the mcpvault code and no
   * token content. 401 and 403 carry `WWW-Authenticate: Bearer` with `error="invalid_token"` or
   * `error="insufficient_scope"`. options: `id` (the JSON-RPC id, default null), `realm` (default "mcpvault"),
   * `resourceMetadata` (an OAuth protected-resource metadata URL to advertise).
   */
  function challenge(error, options = {}) {
    const code = error instanceof McpVaultError && error.code in STATUS ? error.code : "internal_error";
    const status = statusOf(code);
    const message = status === 500 ? "internal error" : String(error.message);
    const headers = { "Content-Type": "application/json" };
    if (status === 401 || status === 403) {
      const params = [
        ["realm", options.realm ?? "mcpvault"],
        ["error", status === 401 ? "invalid_token" : "insufficient_scope"],
        ["error_description", `${code}: ${message}`],
      ];
      if (options.resourceMetadata) params.push(["resource_metadata", options.resourceMetadata]);
      headers["WWW-Authenticate"] = `Bearer ${params.map(([k, v]) => `${k}=${quoted(v)}`).join(", ")}`;
    }
    const data = { code, status };
    if (status === 403 && Number.isSafeInteger(error.failedBlock)) data.failedBlock = error.failedBlock;
    const id = typeof options.id === "string" || typeof options.id === "number" ? options.id : null;
    return { status, headers, body: { jsonrpc: "2.0", id, error: { code: RPC_CODE[status], message, data } } };
  }

  /** `challenge(error, options)` as a fetch `Response`. */
  function challengeResponse(error, options) {
    const c = challenge(error, options);
    return new Response(JSON.stringify(c.body), { status: c.status, headers: c.headers });
  }

  /**
   * The gate for fetch-style servers (Deno, workers, Hono, Bun): reads the JSON body of a clone of `request`,
   * finds the token, authorizes every message (as authorizeBody). Resolves to `{ ok: true, facts, token, body }`
   * with the token removed from `body`, or `{ ok: false, error, response }` with the challenge as a `Response`.
   * options: as authorizeWithState (the stores too), plus `tool`, `realm`, `resourceMetadata`, `maxBodyBytes` (default
   * 4 MiB).
   */
  async function authorizeFetch(request, options = {}) {
    let body;
    try {
      body = await readFetchBody(request, options.maxBodyBytes ?? 4 * 1024 * 1024);
    } catch (e) {
      const error = asError(e);
      return { ok: false, error, response: challengeResponse(error, options) };
    }
    const found = findToken(request, body);
    const out = await authorizeBody(found?.token, body, { ...options, httpMethod: request.method });
    if (out.error) return { ok: false, error: out.error, response: challengeResponse(out.error, { ...options, id: out.id }) };
    return { ok: true, facts: out.facts, token: found.token, body: stripToken(body, found.token) };
  }

  async function readFetchBody(request, max) {
    if (request.method === "GET" || request.method === "HEAD" || request.body == null) return undefined;
    const text = await request.clone().text();
    if (text.length > max) throw refusal("invalid_request", "invalid request: body too large");
    if (text.trim() === "") return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw refusal("invalid_request", "invalid request: body is not JSON");
    }
  }

  /**
   * Throws McpVaultError("invalid_key") unless `hex` is an Ed25519 public key in hex. The core checks a request,
   * then the key, then the token; a valid key therefore reaches the token and reports malformed_token.
   */
  function assertPublicKey(hex, vault = defaultVault()) {
    if (typeof hex !== "string") throw refusal("invalid_key", "invalid key: the public key must be a hex string");
    try {
      vault.verify("-", hex, { method: "initialize", now: 0 });
    } catch (e) {
      if (e instanceof McpVaultError && e.code === "malformed_token") return;
      throw e;
    }
    throw refusal("internal_error", "internal error");
  }

  return {
    CHECK_TOOL,
    authorizeWithState,
    storeOptionsError,
    extractToken,
    findToken,
    callOf,
    authorizeCall,
    authorizeBody,
    stripToken,
    statusOf,
    challenge,
    challengeResponse,
    authorizeFetch,
    assertPublicKey,
  };
}
