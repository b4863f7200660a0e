// The runtime-neutral gate: where an HTTP/MCP server meets the vault. Written once; scripts/build.mjs appends it to
// api.js in every entry (Node, browsers, Deno, workers). It uses no Node or DOM API; `challengeResponse` and
// `authorizeFetch` use the global fetch `Response`/`Request` of the runtime.
//
// Every decision is the core's guard (src/guard.rs): this file only translates requests into the guard's input,
// performs what it asks of a store, and turns its outcome into JS values. No rule lives here.
function makeGate(wasm, McpVaultError, call, facts, telemetry) {
  /** The dry-run tool of mcpvault-mcp: a reserved name, callable with any valid token (it runs nothing). */
  const CHECK_TOOL = "mcpvault.check";
  /** The list methods the guard filters, and the key of their items. */
  // the lists whose answers the core filters (skips a wasm round trip for every other result)
  // the core's guard::LIST_METHODS: the answers its filter narrows (tools/list through filterTools); read from the
  // module on first use (the web entry instantiates it in init(), after this runs)
  let allLists;
  const listMethods = () => (allLists ??= Object.freeze(JSON.parse(wasm.list_methods())));
  const isFilteredList = (method) => method !== "tools/list" && listMethods().includes(method);
  /** The headers the guard reads, the core's list, in the order `check_request` takes their values (read once the
   * module is loaded: browsers load it after this runs). */
  let headerNames;
  const readHeaders = () => (headerNames ??= call(wasm.read_headers()));
  const STORE_METHODS = ["check", "complete", "appendAudit"];

  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const invalid = (message) => new McpVaultError("invalid_request", `invalid request: ${message}`);

  /** A header's value as the guard takes it: repeated values joined as Node joins repeated headers (the guard refuses
   * two tokens); anything but strings is no value. */
  function headerValue(v) {
    if (Array.isArray(v)) v = v.every((x) => typeof x === "string") ? v.join(", ") : undefined;
    return typeof v === "string" ? v : undefined;
  }

  /**
   * The headers `names` (lowercase) of a Node/Express request (plain object) or a fetch Request (Headers), by name: of
   * a plain object, the property of that name, else the first key that is the name in another case (one pass over
   * the keys for all the names it lacks; Node's headers are lowercase already).
   */
  function headersNamed(headers, names) {
    const out = {};
    if (headers == null || typeof headers !== "object") return out;
    if (typeof headers.get === "function") {
      for (const h of names) {
        const v = headerValue(headers.get(h));
        if (v !== undefined) out[h] = v;
      }
      return out;
    }
    let lacking;
    for (const h of names) {
      const v = headers[h];
      if (v === undefined) (lacking ??= new Set()).add(h);
      else {
        const s = headerValue(v);
        if (s !== undefined) out[h] = s;
      }
    }
    if (lacking === undefined) return out;
    for (const k of Object.keys(headers)) {
      const name = k.toLowerCase();
      if (!lacking.has(name)) continue;
      // the first spelling decides (the name itself, holding undefined, included)
      lacking.delete(name);
      const s = headerValue(headers[k]);
      if (s !== undefined) out[name] = s;
    }
    return out;
  }

  /** One header (`name` lowercase), as `headersNamed` reads it. */
  const header = (headers, name) => headersNamed(headers, [name])[name];

  /** The headers the guard reads. */
  const guardHeaders = (headers) => headersNamed(headers, readHeaders());

  /** A body as the guard takes it: JSON text, or a body error (a value that cannot be written as JSON). */
  function bodyText(body) {
    if (body === undefined || body === null || body === "") return {};
    if (typeof body === "string") return { body };
    try {
      return { body: JSON.stringify(body) };
    } catch {
      // nested too deeply for JSON.stringify, or a cycle: the guard refuses it like any unreadable body
      return { bodyError: "not_json" };
    }
  }

  /** The guard's input from a request's parts, but its headers and body (`check_request` takes those as strings);
   * undefined when there is nothing else. */
  function restOf(parts, b) {
    let rest;
    if (b.bodyError !== undefined) (rest ??= {}).body_error = b.bodyError;
    if (typeof parts.transportToken === "string" && parts.transportToken !== "") (rest ??= {}).transport_token = parts.transportToken;
    if (typeof parts.fallbackToken === "string" && parts.fallbackToken !== "") (rest ??= {}).fallback_token = parts.fallbackToken;
    if (parts.replayChecked === true) (rest ??= {}).replay_checked = true;
    if (typeof parts.sessionSubject === "string") (rest ??= {}).session_subject = parts.sessionSubject;
    if (parts.sessionBook === true) (rest ??= {}).session_book = true;
    if (parts.toolDefinitions != null && typeof parts.toolDefinitions !== "function") (rest ??= {}).tool_definitions = parts.toolDefinitions;
    return rest;
  }

  /** Whether `s` is Unicode text: a lone surrogate has no UTF-8, and crossing into the module would turn it into
   * U+FFFD (the guard would decide a body other than the one the caller holds). */
  const wellFormed = typeof String.prototype.isWellFormed === "function"
    ? (s) => s.isWellFormed()
    : (s) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

  function bodyOf(parts) {
    if (parts.bodyError !== undefined) return { bodyError: parts.bodyError };
    const b = bodyText(parts.body);
    return b.body !== undefined && !wellFormed(b.body) ? { bodyError: "not_utf8" } : b;
  }

  /** The guard's input from a request's parts (the core's `GuardInput`). */
  function guardInput(parts) {
    const b = bodyOf(parts);
    const input = { ...(restOf(parts, b) ?? {}), headers: guardHeaders(parts.headers) };
    if (parts.httpMethod !== undefined) input.http_method = String(parts.httpMethod);
    if (b.body !== undefined) input.body = b.body;
    return input;
  }

  /**
   * The guard's first step for a request's parts at `now` (`g` the wasm guard). The headers and the body go over as
   * strings, not inside one JSON text (the token is most of a request's bytes); a decided outcome's token and decisions
   * come back beside its JSON.
   */
  function checkRequest(g, parts, now) {
    const b = bodyOf(parts);
    const rest = restOf(parts, b);
    const h = guardHeaders(parts.headers);
    const step = call(g.check_request(parts.httpMethod === undefined ? undefined : String(parts.httpMethod),
      ...readHeaders().map((n) => h[n]), b.body, rest === undefined ? "" : JSON.stringify(rest), now));
    if (step.step === "done") {
      step.outcome.token = g.take_token() ?? null;
      // read when first asked for (`decisionsIn`): only hooks, telemetry and refusals read them
      step.outcome.decisions = undefined;
      step.outcome[UNREAD] = g.take_decisions();
    }
    return step;
  }

  /** An outcome's decisions as JSON, until first read (a symbol: JSON.stringify and Object.keys skip it). */
  const UNREAD = Symbol("mcpvault.unreadDecisions");

  /** `outcome.decisions`, parsed on first use. */
  function decisionsIn(outcome) {
    if (outcome.decisions === undefined) {
      // a copy of an outcome (structuredClone, JSON) keeps no symbol: fail, never answer "no refusal"
      if (typeof outcome[UNREAD] !== "string") throw new TypeError("this outcome's decisions were not kept (read them with decisionsOf before copying a decideNow outcome)");
      outcome.decisions = JSON.parse(outcome[UNREAD]);
      delete outcome[UNREAD];
    }
    return outcome.decisions;
  }

  /** The McpVaultError of a refusal decision. */
  function refusalError(d) {
    return new McpVaultError(d.code, d.message, d.failed_block, d.failed_check, d.detail);
  }

  /** A decision as `onDecision` hears it. */
  function decisionOf(d, outcome) {
    const out = {
      allowed: d.allowed, code: d.code, status: d.status, method: d.method, tool: d.tool, requestId: d.request_id,
      tokenSource: d.token_source, subject: d.subject, issuer: d.issuer, cacheHit: d.cache_hit === true,
    };
    if (d.depth != null) out.depth = d.depth;
    if (d.prompt != null) out.prompt = d.prompt;
    if (d.resource_uri != null) out.resourceUri = d.resource_uri;
    if (d.session_id != null) out.sessionId = d.session_id;
    if (!d.allowed) Object.assign(out, { message: d.message, detail: d.detail });
    else if (outcome.facts) out.facts = facts(outcome.facts);
    if (d.replayed_response) out.replayedResponse = true;
    if (d.scope != null) out.scope = d.scope;
    if (Array.isArray(d.soft_rules) && d.soft_rules.length > 0) out.softRules = d.soft_rules;
    if (Array.isArray(d.approvers) && d.approvers.length > 0) out.approvers = d.approvers;
    if (d.approval != null) out.approval = { requestHash: d.approval.request_hash, approvers: d.approval.approvers, needed: d.approval.needed };
    return out;
  }

  /** What is wrong with a store (an object with check, complete and appendAudit), or null. */
  function storeError(store) {
    if (store === undefined) return null;
    for (const m of STORE_METHODS) if (typeof store?.[m] !== "function") return `store must have ${m}()`;
    return null;
  }

  /** What is wrong with the store options (`store`, `retryWindow`), or null: adapters check them at start-up. */
  function storeOptionsError(options) {
    const e = storeError(options.store);
    if (e) return e;
    if (options.retryWindow !== undefined && !(Number.isSafeInteger(options.retryWindow) && options.retryWindow >= 0)) {
      return "retryWindow must be seconds";
    }
    return null;
  }

  /**
   * The guard of one server (SCHEMA.md, "The guard"). options: `publicKey` (hex, required), `audience`, `store` (a
   * store of mcpvault-store: revocation, single-use spends, audit; none: single-use tokens are refused),
   * `retryWindow` (seconds, default 30), `tool` (the route serves one tool), `checkTool` (answer `mcpvault.check`),
   * `deferSpend` (an inner layer spends single-use tokens), `realm`, `resourceMetadata`, `cache` (verified chains
   * kept, default 1024), `now` (a clock in unix seconds); the server's policy (SCHEMA.md, "Server policy"):
   * `mappings` (`{ tool: scope }`), `toolMappings` (`[{ tool, service?, scope, when?, priority? }]`), `rules`
   * (`[{ id, tool?, when?, enforcement: "hard" | "soft", message? }]`), `openResources` / `openPrompts` (tokens
   * that grant no resource / prompt may read them; closed by default); `forwardProofs` (hand on the proofs and
   * approvals this layer counted and spent, for an inner layer such as withMcpVault); `deferPins` (an inner layer that knows
   * the server's tool definitions checks pinned tools); `maxBodyContainers` / `maxBodyValues` (default 10,000 /
   * 100,000: a body holding more objects and arrays, or values, is refused before it is parsed); `verifyOnly` (the
   * host runs allowed calls itself and cannot answer with a recorded response: a retry of a call whose response
   * another server recorded is `replayed`). A bad key or option throws here.
   */
  class Guard {
    constructor(options = {}) {
      if (!isObject(options)) throw new TypeError("Guard options must be an object");
      const e = storeOptionsError(options);
      if (e) throw new TypeError(e);
      if (options.now !== undefined && typeof options.now !== "function") throw new TypeError("now must be a function returning unix seconds");
      const cache = options.cache ?? 1024;
      if (!Number.isSafeInteger(cache) || cache < 0 || cache > 0xffffffff) throw new TypeError("cache must be a non-negative integer");
      this.store = options.store;
      this.checkTool = options.checkTool === true;
      this._now = options.now ?? (() => Math.floor(Date.now() / 1000));
      this.options = {
        public_key: typeof options.publicKey === "string" ? options.publicKey : "",
        audience: options.audience ?? undefined,
        retry_window: options.retryWindow ?? undefined,
        store: options.store !== undefined,
        tool: options.tool ?? undefined,
        check_tool: this.checkTool,
        defer_spend: options.deferSpend === true,
        realm: options.realm ?? undefined,
        resource_metadata: options.resourceMetadata ?? undefined,
        mappings: options.mappings ?? undefined,
        tool_mappings: options.toolMappings ?? undefined,
        rules: options.rules ?? undefined,
        open_resources: options.openResources === true || undefined,
        open_prompts: options.openPrompts === true || undefined,
        forward_proofs: options.forwardProofs === true || undefined,
        defer_pins: options.deferPins === true || undefined,
        max_body_containers: options.maxBodyContainers ?? undefined,
        max_body_values: options.maxBodyValues ?? undefined,
        verify_only: options.verifyOnly === true || undefined,
      };
      this._g = new wasm.Guard(JSON.stringify(this.options), cache);
      const err = this._g.error();
      if (err) call(err);
    }

    /** `{ hits, misses, entries, capacity }` of the verified-chain cache. */
    cacheStats() {
      return JSON.parse(this._g.stats());
    }

    _time(now) {
      const t = now ?? this._now();
      if (!Number.isSafeInteger(t) || t < 0) throw invalid("now must be a non-negative integer (unix seconds)");
      return t;
    }

    /**
     * Decides a request: `parts` = `{ httpMethod?, headers?, body? (text or parsed JSON), bodyError? ("too_large" |
     * "not_utf8" | "not_json"), transportToken?, fallbackToken?, replayChecked?, sessionSubject?, sessionBook?, toolDefinitions? (the
     * hashes of the server's current tool definitions by name: `toolHashes` of its tools/list), now? }`. `headers`: a
     * header sent more than once as its values joined by ", " (or an array of them); Node's `req.headers` keeps only the
     * first Authorization header, so a server on plain Node joins those from `req.rawHeaders`, as mcpvault-express does. Performs
     * what the guard asks of the store and appends the audit records. Resolves to the core's outcome (SCHEMA.md):
     * `{ allowed, status, headers, response, forward, answers, token, token_source, facts, decisions, call_key,
     * keep_until, ... }`. Never rejects for a bad request: a failing store is a refusal (`internal_error`).
     */
    decide(parts = {}) {
      try {
        const outcome = this.decideNow(parts);
        if (typeof outcome.then === "function") return outcome.then((o) => (decisionsIn(o), o));
        decisionsIn(outcome);
        return Promise.resolve(outcome);
      } catch (e) {
        return Promise.reject(e);
      }
    }

    /**
     * `decide` without a promise when the request needs nothing asynchronous (no store to ask or append to, no tool
     * definitions to read): the outcome, else a promise of it. Its `decisions` are read with `decisionsOf` or
     * `errorOf` (the outcome holds them unread: most requests never need them). Servers call it on every request.
     */
    decideNow(parts = {}) {
      const active = telemetry.active();
      const start = active ? telemetry.clock() : 0;
      // telemetry turned on since the last decision (an SDK registered): the cache counters count from now
      if (active && !this._active) this._reported = this.cacheStats();
      this._active = active;
      const store = "store" in parts ? parts.store : this.store;
      const now = this._time(parts.now);
      const step = checkRequest(this._g, parts, now);
      const done = (outcome) => {
        if (active) this._record(outcome, parts.headers, start);
        return outcome;
      };
      if (step.step === "done" && !this._needsDefinitions(step, parts) && !(store && step.outcome.audit.length > 0)) return done(step.outcome);
      return this._decide(parts, store, now, step).then(done);
    }

    /** `toolDefinitions` as a function: read only when the guard says a pinned call needs them (a valid token's). */
    _needsDefinitions(step, parts) {
      const needs = step.step === "ask" ? step.needs_tool_definitions : step.outcome.needs_tool_definitions;
      return needs && typeof parts.toolDefinitions === "function";
    }

    /** Telemetry of one decided request (spans, metrics): what the core's decisions say, and the change of the
     * cache's counters since the last report (only this guard's decisions move them). */
    _record(outcome, headers, start) {
      decisionsIn(outcome);
      const after = this.cacheStats();
      const before = this._reported ?? { hits: 0, misses: 0 };
      this._reported = after;
      const http = { traceparent: header(headers, "traceparent"), tracestate: header(headers, "tracestate") };
      telemetry.record(outcome, { start, end: telemetry.clock(), http, hits: after.hits - before.hits, misses: after.misses - before.misses });
    }

    /** The rest of `decideNow` from the guard's first `step`: the tool definitions, the store, the audit. */
    async _decide(parts, store, now, step) {
      // then the request is checked again with the definitions; nothing was done yet (a refusal, or before the store)
      if (this._needsDefinitions(step, parts)) {
        let defs;
        try {
          defs = await parts.toolDefinitions();
        } catch {
          defs = undefined;
        }
        step = checkRequest(this._g, { ...parts, toolDefinitions: isObject(defs) ? defs : {} }, now);
      }
      let outcome = step.outcome;
      if (step.step === "ask") {
        let answer;
        try {
          answer = await store.check(step.ask);
          // a store that answers nothing (or not an object) has failed: the guard refuses, it never allows
          if (!isObject(answer)) answer = { error: "the store's check answered no object" };
        } catch (e) {
          answer = { error: String(e?.message ?? e) };
        }
        outcome = call(this._g.resume(JSON.stringify(step.pending), JSON.stringify(answer)));
      }
      if (store && outcome.audit.length > 0) {
        try {
          for (const r of outcome.audit) await store.appendAudit(r);
        } catch (e) {
          decisionsIn(outcome);
          outcome = call(this._g.audit_failed(JSON.stringify(outcome), String(e?.message ?? e)));
        }
      }
      return outcome;
    }

    /** After the handler of an allowed single-use call ran: records its response (`{ result }` or `{ error }`) so
     * a retry of the same request gets it instead of a second execution. */
    async complete(outcome, response, store = this.store) {
      if (!outcome?.call_key || !store) return;
      await store.complete(outcome.call_key, response, outcome.keep_until, outcome.keep_for);
    }

    /** The refusal of an outcome as an McpVaultError (null when allowed). */
    errorOf(outcome) {
      const d = decisionsIn(outcome).find((x) => !x.allowed);
      return d ? refusalError(d) : null;
    }

    /** The facts of an allowed outcome, as `MCPVault.verify` returns them. */
    factsOf(outcome) {
      return outcome.facts ? facts(outcome.facts) : null;
    }

    /** The decisions of an outcome as `onDecision` hears them. */
    decisionsOf(outcome) {
      return decisionsIn(outcome).map((d) => decisionOf(d, outcome));
    }

    /**
     * `result` of a `resources/list`, `resources/templates/list` or `prompts/list` with only what `outcome` grants
     * (the core's filter; open resources/prompts when the options open them). Other methods: `result` as it is.
     */
    filterList(method, result, outcome) {
      if (!isFilteredList(method)) return result;
      // the core decides what each list keeps (and empties it when no token verified)
      return call(this._g.filter(method, JSON.stringify(isObject(result) ? result : {}), JSON.stringify(outcome.facts ?? null), true));
    }

    /**
     * `result` of a tools/list with only the tools `outcome` grants by name or through a scope the policy maps them
     * to (and the dry-run tool on the first page).
     */
    filterTools(result, outcome, firstPage = true) {
      return call(this._g.filter("tools/list", JSON.stringify(isObject(result) ? result : {}), JSON.stringify(outcome.facts ?? null), firstPage));
    }
  }

  /** A store's atomic step for `ask` given what it `read` (`{ revoked, held, recorded }`): `{ answer, write }`. */
  function storeDecide(ask, read) {
    return call(wasm.store_decide(JSON.stringify(ask), JSON.stringify(read)));
  }

  /** spend.lua's `{ keys, args }` for a store's `ask` (Redis stores: the call is the core's). */
  function redisCall(ask) {
    return call(wasm.redis_call(JSON.stringify(ask)));
  }

  /** The store's answer to `ask` from spend.lua's `reply` (an array); a reply the script never gives is an answer
   * with `error` (the guard refuses the request). */
  function redisAnswer(ask, reply) {
    return call(wasm.redis_answer(JSON.stringify(ask), JSON.stringify(reply)));
  }

  /** A full revocation id (128 hex characters), lowercased; throws invalid_request for anything else. */
  function revocationId(id) {
    return call(wasm.revocation_id(String(id)));
  }

  // One guard per option set for the function API (created on first use; each caches verified chains).
  const guards = new Map();
  function guardFor(options, extra) {
    const o = { ...options, ...extra };
    const key = JSON.stringify([o.publicKey, o.audience, o.retryWindow, o.tool, o.checkTool, o.deferSpend, o.realm, o.resourceMetadata, o.store !== undefined,
      o.mappings, o.toolMappings, o.rules, o.openResources, o.openPrompts, o.forwardProofs, o.deferPins, o.maxBodyContainers,
      o.maxBodyValues, o.verifyOnly]);
    let g = guards.get(key);
    if (!g) {
      if (guards.size >= 64) guards.delete(guards.keys().next().value);
      // the store and the clock come with each call (every caller passes `store`): a shared guard holds the options
      // and the cache, never a caller's store
      g = new Guard({ ...o, now: undefined });
      g.store = undefined;
      guards.set(key, g);
    }
    return g;
  }

  /** `{ token, source }` or null; source is "header", "bearer", "_meta.token" or "_meta.mcpvault/token". */
  function findToken(request, body = request?.body) {
    return call(wasm.find_token(JSON.stringify(guardInput({ headers: request?.headers, body }))));
  }

  /**
   * The token a request presents: the `X-MCPVault-Token` header, then `Authorization: Bearer`, then the JSON-RPC
   * body's `params._meta.token` or `params._meta["mcpvault/token"]`. `request` is a Node/Express request or a fetch
   * `Request`; `body` defaults to `request.body` (a parsed JSON body). Returns the token or null.
   */
  function extractToken(request, body) {
    return findToken(request, body === undefined ? request?.body : body)?.token ?? null;
  }

  /** A message for the guard from a JSON-RPC message or `{ method?, tool, arguments? }`. */
  function messageOf(c, requestId) {
    if (isObject(c) && c.jsonrpc !== undefined) return c;
    if (!isObject(c)) return c;
    const method = c.method ?? "tools/call";
    const m = { jsonrpc: "2.0", id: requestId ?? "", method };
    if (method === "tools/call") m.params = { name: c.tool, arguments: c.arguments ?? {} };
    return m;
  }

  function asResult(guard, outcome) {
    return outcome.allowed ? guard.factsOf(outcome) ?? {} : guard.errorOf(outcome);
  }

  /** The call's time: `options.now`, else the clock of `options.vault` (tests pin one), else the wall clock. */
  function checkTime(options, vault) {
    return options.now ?? (vault ? vault._time() : Math.floor(Date.now() / 1000));
  }

  /**
   * Authorizes one call without state (no store: nothing spent, nothing recorded, so a single-use token, a proof or
   * an approval is `replayed` and a counted quota `rate_limited`: `authorizeWithState` keeps them). `call` is a JSON-RPC message or
   * `{ method?, tool, arguments? }`; options: `publicKey` (hex, required), `audience`, `now` (unix seconds).
   * Returns the authorized facts, or an McpVaultError (returned, not thrown) — never an allow by accident.
   */
  function authorizeCall(token, c, options = {}) {
    try {
      const g = guardFor(options, { checkTool: false, store: undefined });
      const now = g._time(checkTime(options, options.vault));
      const start = telemetry.clock();
      // the token passed in is the request's (a transport token): a different one in the message's _meta is two
      // tokens, refused — as a fallback, the message's own would have been decided instead
      const step = checkRequest(g._g, { body: messageOf(c), transportToken: token }, now);
      if (telemetry.active()) g._record(step.outcome, undefined, start);
      return asResult(g, step.outcome);
    } catch (e) {
      return asError(e);
    }
  }

  function asError(e) {
    return e instanceof McpVaultError ? e : new McpVaultError("internal_error", "internal error");
  }

  /**
   * authorizeCall, then what the verifier remembers (SCHEMA.md, "The guard"): with `options.store`, a token whose
   * chain holds a revoked id is `revoked`, a single-use token's tools/call is spent (`replayed` when another call
   * spent it, `in_flight` for the same request again), and the decision is appended to the audit log; without one,
   * a single-use token's tools/call is refused. `options.requestId` (default: the message's id) tells a retry of the
   * same request from a replay, within `options.retryWindow` seconds (default 30). Resolves to the facts or an
   * McpVaultError; a failing store is `internal_error` — never an allow.
   */
  async function authorizeWithState(token, c, options = {}) {
    try {
      // the caller runs what is allowed: a retry of a call another server recorded is refused, never run again
      const g = guardFor(options, { checkTool: false, verifyOnly: true });
      const message = messageOf(c, options.requestId);
      const outcome = await g.decide({ body: message, transportToken: token, replayChecked: options.replayChecked, now: checkTime(options, options.vault), store: options.store });
      return asResult(g, outcome);
    } catch (e) {
      return asError(e);
    }
  }

  /**
   * Authorizes what an HTTP body asks, for one token (see SCHEMA.md, "The guard": batches, a route serving one
   * tool with `options.tool`, body-less requests as `http/<METHOD>`). Resolves to `{ facts, outcome, id }` or
   * `{ error, outcome, id }`.
   */
  async function authorizeBody(token, body, options = {}) {
    let g;
    try {
      g = guardFor(options, { checkTool: false, verifyOnly: true });
    } catch (e) {
      return { error: asError(e), outcome: null, id: null };
    }
    const outcome = await g.decide({ body, transportToken: token ?? undefined, httpMethod: options.httpMethod, now: checkTime(options, options.vault), store: options.store });
    const first = outcome.decisions.find((d) => !d.allowed) ?? outcome.decisions[0];
    const id = first?.request_id ?? null;
    const idValue = id !== null && Array.isArray(body) ? body.find((m) => String(m?.id) === id)?.id ?? id : isObject(body) && body.id !== undefined ? body.id : id;
    return outcome.allowed ? { facts: g.factsOf(outcome), outcome, id: idValue } : { error: g.errorOf(outcome), outcome, id: idValue };
  }

  /** The HTTP status of a code (500 for one this version does not know). */
  function statusOf(code) {
    return challenge(new McpVaultError(String(code), "")).status;
  }

  /**
   * The HTTP answer to a refusal: `{ status, headers, body }` with `body` a JSON-RPC error object
   * `{ jsonrpc, id, error: { code, message, data: { code, status } } }` that carries the mcpvault code and no
   * token content. 401 and 403 carry `WWW-Authenticate: Bearer` (RFC 6750: no `error` when no token was presented,
   * `invalid_token` for 401, `insufficient_scope` and its `scope` for 403). options: `id` (the JSON-RPC id, default
   * null), `realm`, `resourceMetadata`, `tool` (the scope a 403 asks for).
   */
  function challenge(error, options = {}) {
    const isErr = error instanceof McpVaultError;
    const code = isErr ? error.code : "internal_error";
    const message = isErr ? String(error.message) : "internal error";
    const block = isErr && Number.isSafeInteger(error.failedBlock) ? error.failedBlock : -1;
    const id = typeof options.id === "string" || typeof options.id === "number" ? JSON.stringify(options.id) : "null";
    const o = { public_key: "", realm: options.realm ?? undefined, resource_metadata: options.resourceMetadata ?? undefined };
    const c = call(wasm.refusal(code, message, block, options.tool ?? "", id, JSON.stringify(o)));
    return { status: c.status, headers: { "Content-Type": "application/json", ...c.headers }, body: c.body };
  }

  /** `challenge(error, options)` as a fetch `Response`. */
  function challengeResponse(error, options) {
    const c = challenge(error, options);
    return new Response(JSON.stringify(c.body), { status: c.status, headers: c.headers });
  }

  /** An outcome's answer as a fetch `Response`: the refusal, or what the guard answered itself. */
  function outcomeResponse(outcome, batch) {
    const headers = { "Content-Type": "application/json", ...outcome.headers };
    if (!outcome.allowed) return new Response(JSON.stringify(outcome.response), { status: outcome.status, headers });
    return new Response(JSON.stringify(batch ? outcome.answers : outcome.answers[0]), { status: 200, headers });
  }

  /**
   * The gate for fetch-style servers (Deno, workers, Hono, Bun): reads the body of a clone of `request` and runs the
   * guard. Resolves to `{ ok: true, facts, token, body, outcome }` with the token removed from `body`, or
   * `{ ok: false, error, response, outcome }` with the answer as a `Response`. When the guard answered every message
   * itself (a retry answered with its recorded response), `response` is that answer and `ok` is true. options: as
   * the Guard (`publicKey`, `store`, …), plus `maxBodyBytes` (default 4 MiB).
   */
  async function authorizeFetch(request, options = {}) {
    let g;
    try {
      g = guardFor(options, {});
    } catch (e) {
      const error = asError(e);
      return { ok: false, error, response: challengeResponse(error), outcome: null };
    }
    const parts = { httpMethod: request.method, headers: request.headers, now: checkTime(options, options.vault), store: options.store };
    // the hashes of the server's current tool definitions (`toolHashes`), for tokens that pin tools
    // a function is called only when the guard says a pinned call needs the definitions (as Guard.decide does: a
    // failing one counts as none); anything but a function or an object is none (pinned calls are refused)
    const defs = options.toolDefinitions;
    if (defs != null) parts.toolDefinitions = typeof defs === "function" || isObject(defs) ? defs : {};
    try {
      parts.body = await readFetchBody(request, options.maxBodyBytes ?? 4 * 1024 * 1024);
    } catch (e) {
      parts.bodyError = e.bodyError ?? "not_json";
    }
    const outcome = await g.decide(parts);
    if (!outcome.allowed) return { ok: false, error: g.errorOf(outcome), response: outcomeResponse(outcome), outcome };
    // a one-tool route's plain body is handed on as it came when the guard removed nothing from it (forward null)
    const plain = outcome.forward == null && outcome.answers.length === 0 && parts.body !== undefined ? JSON.parse(parts.body) : undefined;
    const out = { ok: true, facts: g.factsOf(outcome), token: outcome.token, body: outcome.forward ?? plain, outcome };
    // a batch is answered with an array (JSON-RPC 2.0), however few of its messages the guard answered
    const batch = typeof parts.body === "string" && parts.body.trimStart().startsWith("[");
    if (outcome.answers.length > 0 && outcome.forward == null) out.response = outcomeResponse(outcome, batch);
    // a batch of which the guard answered some messages (the dry-run tool, a retry's recorded response) and hands on
    // the rest: its answers go into the handler's batch reply, or those ids are never answered
    else if (outcome.answers.length > 0) out.answers = outcome.answers;
    return out;
  }

  /** The body's text, read from a clone (the handler reads the request after) and never more than `max` bytes of
   * it: a longer body stops the read (a declared Content-Length over `max` before any), and is too_large. */
  async function readFetchBody(request, max) {
    if (request.method === "GET" || request.method === "HEAD" || request.body == null) return undefined;
    const tooLarge = () => Object.assign(new Error("body too large"), { bodyError: "too_large" });
    const declared = Number(request.headers.get("content-length") ?? NaN);
    if (declared > max) throw tooLarge();
    const reader = request.clone().body.getReader();
    const chunks = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > max) {
        reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.byteLength;
    }
    let text;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw Object.assign(new Error("body is not UTF-8"), { bodyError: "not_utf8" });
    }
    return text.trim() === "" ? undefined : text;
  }

  /**
   * Throws McpVaultError("invalid_key") unless `hex` is an Ed25519 public key in hex.
   */
  function assertPublicKey(hex) {
    if (typeof hex !== "string") throw new McpVaultError("invalid_key", "invalid key: the public key must be a hex string");
    const g = new wasm.Guard(JSON.stringify({ public_key: hex }), 0);
    const err = g.error();
    g.free?.();
    if (err) call(err);
  }

  return {
    CHECK_TOOL,
    listMethods,
    Guard,
    storeDecide,
    redisCall,
    redisAnswer,
    revocationId,
    authorizeWithState,
    storeOptionsError,
    extractToken,
    findToken,
    authorizeCall,
    authorizeBody,
    statusOf,
    challenge,
    challengeResponse,
    authorizeFetch,
    assertPublicKey,
  };
}
