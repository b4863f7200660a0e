// The JS API over the wasm-bindgen boundary. Written once; scripts/build.mjs
// wraps it as ESM and CommonJS. `wasm` is the generated bindings: functions
// that take JSON text and return `{"ok": …}` or `{"error": {…}}` as JSON text.
function makeApi(wasm, isLoaded, otelApi) {
  /** A typed mcpvault failure; `code` is the core's stable snake_case code. */
  class McpVaultError extends Error {
    constructor(code, message, failedBlock, failedCheck, detail) {
      super(message);
      this.name = "McpVaultError";
      this.code = code;
      this.failedBlock = failedBlock ?? null;
      this.failedCheck = failedCheck ?? null;
      // For server-side logs only (why a signature or format failure happened); not enumerable, so serialising
      // the error for a caller does not carry it.
      Object.defineProperty(this, "detail", { value: detail ?? message, enumerable: false });
    }
  }

  function call(json) {
    const out = JSON.parse(json);
    if (out.error) {
      const e = out.error;
      const err = new McpVaultError(e.code, e.message, e.failed_block, e.failed_check, e.detail);
      if (e.approval) Object.defineProperty(err, "approval", { value: e.approval, enumerable: true });
      throw err;
    }
    return out.ok;
  }

  function invalid(message) {
    return new McpVaultError("invalid_request", `invalid request: ${message}`);
  }

  /**
   * Refuses keys this API does not know: a misspelt `tll` in a restriction would otherwise be dropped, and the
   * token would narrow less than its author meant (deny by default: a typo is an error, not a wider token).
   */
  function known(obj, keys, what) {
    for (const k of Object.keys(obj)) {
      if (!keys.includes(k)) throw invalid(`unknown field ${JSON.stringify(k)} in ${what} (expected ${keys.join(", ")})`);
    }
    return obj;
  }

  function flag(value, name) {
    if (value == null) return undefined;
    if (typeof value !== "boolean") throw invalid(`${name} must be a boolean`);
    return value || undefined;
  }

  /**
   * The `argLimits` entries as the core's JSON: `{ tool, arg, op, value }` passed through (the core checks each op and
   * value, and refuses a limit on a tool the token does not grant). `number: true` on `max`/`min` makes a whole value
   * a number limit: the core reads `100.0` as a number limit and `100` as an integer one, and JSON.stringify writes
   * both as `100`, so the entry is written as JSON text with the fraction.
   */
  function limits(list) {
    if (list == null) return undefined;
    if (!Array.isArray(list)) throw invalid("argLimits must be an array");
    return list.map((l) => {
      if (l == null || typeof l !== "object") throw invalid("each argLimits entry must be an object");
      known(l, ["tool", "arg", "op", "value", "number"], "an argLimits entry");
      const entry = { tool: l.tool, arg: l.arg, op: l.op, value: l.value };
      if (l.number == null || l.number === false) return JSON.stringify(entry);
      if (l.number !== true || (l.op !== "max" && l.op !== "min")) throw invalid("number: true goes with op max or min");
      if (typeof l.tool !== "string" || typeof l.arg !== "string" || typeof l.value !== "number" || !Number.isFinite(l.value)) {
        throw invalid(`a number ${l.op} needs a tool, an arg and a finite number`);
      }
      const v = String(l.value);   // "100", "99.5" or "1e+21"
      return `${JSON.stringify({ tool: l.tool, arg: l.arg, op: l.op }).slice(0, -1)},"value":${/[.e]/.test(v) ? v : `${v}.0`}}`;
    });
  }

  /** JSON text of a grant or restriction whose argument limits are `limits(…)`'s texts. */
  function withLimits(fields, texts) {
    const text = JSON.stringify(fields);
    if (texts === undefined) return text;
    const tail = `"arg_limits":[${texts.join(",")}]}`;
    return text === "{}" ? `{${tail}` : `${text.slice(0, -1)},${tail}`;
  }

  function facts(f) {
    const out = {
      verified: f.verified === true,
      tools: f.tools,
      issuer: f.issuer,
      subject: f.subject,
      expiresAt: f.expires_at,
      depth: f.depth,
      audience: f.audience,
      maxDepth: f.max_depth,
      revocationIds: f.revocation_ids,
    };
    if (f.tool != null) out.tool = f.tool;
    if (Array.isArray(f.nonces) && f.nonces.length > 0) out.nonces = f.nonces;
    if (Array.isArray(f.scopes) && f.scopes.length > 0) out.scopes = f.scopes;
    if (f.scope != null) out.scope = f.scope;
    if (Array.isArray(f.resources) && f.resources.length > 0) out.resources = f.resources;
    if (Array.isArray(f.prompts)) out.prompts = f.prompts;
    if (f.holder != null) out.holder = f.holder;
    if (f.proof_nonce != null) out.proofNonce = f.proof_nonce;
    if (f.pins != null && Object.keys(f.pins).length > 0) out.pins = f.pins;
    if (Array.isArray(f.approvals) && f.approvals.length > 0) {
      out.approvals = f.approvals.map(({ expires_at, ...a }) => ({ ...a, expiresAt: expires_at }));
    }
    if (Array.isArray(f.quotas) && f.quotas.length > 0) {
      out.quotas = f.quotas.map(({ revocation_id, ...q }) => ({ ...q, revocationId: revocation_id }));
    }
    return out;
  }

  class MCPVault {
    /**
     * @param {{ now?: () => number, cache?: number }} [options] `now`: clock in unix seconds (default
     * Date.now); `cache`: keep up to this many verified signature chains (default 0, off).
     */
    constructor(options = {}) {
      if (isLoaded && !isLoaded()) {
        throw new Error("mcpvault: `await init()` before `new MCPVault()` in browsers and workers");
      }
      if (options.now != null && typeof options.now !== "function") {
        throw new TypeError("options.now must be a function returning unix seconds");
      }
      const cache = options.cache ?? 0;
      if (!Number.isSafeInteger(cache) || cache < 0 || cache > 0xffffffff) {
        throw new TypeError("options.cache must be a non-negative integer");
      }
      this._now = options.now ?? (() => Math.floor(Date.now() / 1000));
      this._verifier = cache > 0 ? new wasm.CachedVerifier(cache) : null;
    }

    /** `{ hits, misses, entries, capacity }` of the verified-chain cache (zeros when off). */
    cacheStats() {
      return this._verifier ? JSON.parse(this._verifier.stats()) : { hits: 0, misses: 0, entries: 0, capacity: 0 };
    }

    _time(now) {
      const t = now ?? this._now();
      if (!Number.isSafeInteger(t) || t < 0) throw invalid("now must be a non-negative integer (unix seconds)");
      return t;
    }

    generateKeypair() {
      const k = call(wasm.keygen());
      return { privateKey: k.private_key, publicKey: k.public_key };
    }

    mint(privateKey, grant, options = {}) {
      if (grant == null || typeof grant !== "object") throw invalid("grant must be an object");
      known(grant, ["tools", "scopes", "resources", "prompts", "ttl", "issuer", "subject", "audience", "maxDepth", "argLimits", "singleUse", "rate", "budget", "holder", "pin", "requireApproval"], "grant");
      known(options ?? {}, ["now"], "mint options");
      const g = {
        tools: grant.tools ?? undefined,
        scopes: grant.scopes ?? undefined,
        resources: grant.resources ?? undefined,
        prompts: grant.prompts ?? undefined,
        ttl: grant.ttl,
        issuer: grant.issuer,
        subject: grant.subject,
        audience: grant.audience ?? undefined,
        max_depth: grant.maxDepth ?? undefined,
        single_use: flag(grant.singleUse, "singleUse"),
        rate: grant.rate ?? undefined,
        budget: grant.budget ?? undefined,
        holder: grant.holder ?? undefined,
        pin: grant.pin ?? undefined,
        require_approval: grant.requireApproval ?? undefined,
      };
      const text = withLimits(g, limits(grant.argLimits));
      return call(wasm.mint(String(privateKey), text, this._time(options.now)));
    }

    /** Returns the narrower token; `options.onWarning(message)` hears what narrowed less than asked. */
    attenuate(token, restriction, options = {}) {
      if (restriction == null || typeof restriction !== "object") throw invalid("restriction must be an object");
      known(restriction, ["tools", "scopes", "resources", "prompts", "ttl", "audience", "maxDepth", "argLimits", "singleUse", "rate", "budget", "holder", "pin", "requireApproval"], "restriction");
      known(options ?? {}, ["now", "onWarning"], "attenuate options");
      const r = {
        tools: restriction.tools ?? undefined,
        scopes: restriction.scopes ?? undefined,
        resources: restriction.resources ?? undefined,
        prompts: restriction.prompts ?? undefined,
        ttl: restriction.ttl ?? undefined,
        audience: restriction.audience ?? undefined,
        max_depth: restriction.maxDepth ?? undefined,
        single_use: flag(restriction.singleUse, "singleUse"),
        rate: restriction.rate ?? undefined,
        budget: restriction.budget ?? undefined,
        holder: restriction.holder ?? undefined,
        pin: restriction.pin ?? undefined,
        require_approval: restriction.requireApproval ?? undefined,
      };
      const out = call(wasm.attenuate(String(token), withLimits(r, limits(restriction.argLimits)), this._time(options.now)));
      if (typeof options.onWarning === "function") out.warnings.forEach((w) => options.onWarning(w));
      return out.token;
    }

    /** Verifies `token` for one call; returns the authorized facts or throws McpVaultError. */
    verify(token, publicKey, request = {}) {
      if (request == null || typeof request !== "object") throw invalid("request must be an object");
      known(request, ["method", "requestedTool", "tool", "arguments", "audience", "scope", "resource", "prompt", "proof", "toolDefinition", "approvals", "now"], "request");
      const req = {
        method: request.method ?? "tools/call",
        tool: request.requestedTool ?? request.tool ?? undefined,
        arguments: request.arguments ?? {},
        audience: request.audience ?? undefined,
        scope: request.scope ?? undefined,
        resource: request.resource ?? undefined,
        prompt: request.prompt ?? undefined,
        proof: request.proof ?? undefined,
        tool_definition: request.toolDefinition ?? undefined,
        approvals: request.approvals ?? undefined,
      };
      const args4 = [String(token), String(publicKey), JSON.stringify(req), this._time(request.now)];
      const out = this._verifier ? this._verifier.verify(...args4) : wasm.verify(...args4);
      return facts(call(out));
    }

    /**
     * The proof of one call of a holder-bound token, signed with the holder's private key (hex): send it as
     * `params._meta["mcpvault/proof"]` (or the `X-MCPVault-Proof` header). `call`: `{ tool, arguments }` for a
     * tools/call, or `{ method, name }` (resources/read and a URI, prompts/get and a prompt), or `{ message }` (the
     * JSON-RPC message itself: the core reads what the guard will authorize it as, `callTarget`), and the server's
     * `audience` when it has one. Fresh for 60 s, used once (SCHEMA.md, "Holder-bound tokens and proofs").
     */
    signCall(holderPrivateKey, token, what = {}, options = {}) {
      known(options ?? {}, ["now"], "signCall options");
      return call(wasm.sign_call(String(holderPrivateKey), String(token), JSON.stringify(callOf(what, String(token))), this._time(options.now)));
    }

    /**
     * The request hash of one call of `token` (`{ tool, arguments, audience }` as for `signCall`): what an approver
     * signs (`approve`); an `approval_required` error carries it too (`err.approval.requestHash`).
     */
    requestHash(token, what = {}) {
      return call(wasm.request_hash(String(token), JSON.stringify(callOf(what, String(token)))));
    }

    /**
     * An approval of `requestHash`, signed with the approver's private key (hex), valid `options.ttl` seconds
     * (default 300, at most 3600): send it in `params._meta["mcpvault/approvals"]` (SCHEMA.md, "Signed approvals").
     */
    approve(approverPrivateKey, requestHash, options = {}) {
      known(options ?? {}, ["ttl", "now"], "approve options");
      return call(wasm.approve(String(approverPrivateKey), String(requestHash), options.ttl ?? 300, this._time(options.now)));
    }

    /** The token's blocks, Datalog, expiry and revocation ids (the CLI's JSON); not verified. */
    inspect(token) {
      return call(wasm.inspect(String(token)));
    }
  }

  /**
   * The audit entry that follows `prev` (null for the first) for `record`: `{ time, allowed, code, method, tool,
   * subject, issuer, revocation_ids, request_id }`. The core computes the hash, so every host writes the same chain.
   */
  function auditAppend(prev, record) {
    return call(wasm.audit_append(prev == null ? "" : JSON.stringify(prev), JSON.stringify(record)));
  }

  /** `{ entries, head }` for a sound chain, or `{ break: { index, seq, kind, detail } }` at the first broken entry. */
  function auditVerify(entries) {
    if (!Array.isArray(entries)) throw invalid("entries must be an array");
    return call(wasm.audit_verify(JSON.stringify(entries)));
  }

  /**
   * What a proof or an approval of `message` (one JSON-RPC request or notification as a client sends it: `{ method,
   * params }`; `id` and `jsonrpc` are not read) signs, by the guard's own rule: `{ method, name?, arguments }`.
   * `token`: the token sent with it (an argument that is the token is not signed: the guard removes it). A message
   * the guard refuses as malformed throws `invalid_request`.
   */
  function callTarget(message, token) {
    let text;
    try {
      text = JSON.stringify(message ?? null);
    } catch (e) {
      throw invalid(`message: ${e?.message ?? e}`);
    }
    return call(wasm.call_target(text, typeof token === "string" ? token : ""));
  }

  /** The call `signCall` and `requestHash` name: `{ tool, arguments }`, `{ method, name }` or `{ message }` (the
   * core reads what the guard authorizes the message as), and `audience`. */
  function callOf(what, token) {
    if (what == null || typeof what !== "object") throw invalid("call must be an object");
    known(what, ["tool", "arguments", "method", "name", "audience", "message"], "call");
    if (what.message !== undefined) {
      if (["tool", "arguments", "method", "name"].some((k) => what[k] !== undefined)) {
        throw invalid("call: give message, or tool, arguments, method and name, not both");
      }
      const t = callTarget(what.message, token);
      return { method: t.method, name: t.name ?? null, arguments: t.arguments, audience: what.audience ?? null };
    }
    return {
      method: what.method ?? "tools/call",
      name: what.tool ?? what.name ?? null,
      arguments: what.arguments ?? {},
      audience: what.audience ?? null,
    };
  }

  /** The definition hash of every tool of a `tools/list` result, by name: what `pin` takes (SCHEMA.md). */
  function toolHashes(result) {
    return call(wasm.tool_hashes(JSON.stringify(result ?? null)));
  }

  /** The key that tells a retry of a JSON-RPC request from a replay (hex; the same on every host). */
  function callKey(requestId, method, tool, args) {
    return call(wasm.call_key(String(requestId ?? ""), String(method), tool == null ? "" : String(tool), JSON.stringify(args ?? {})));
  }

  const telemetry = makeTelemetry(otelApi ?? null);
  return {
    MCPVault, McpVaultError, auditAppend, auditVerify, callKey, callTarget, toolHashes, ...makeGate(wasm, McpVaultError, call, facts, telemetry),
    /** Reports decisions through `api` (the `@opentelemetry/api` module; on Node it is found by itself when installed);
     * null turns spans and metrics off. */
    useOpenTelemetry: (api) => telemetry.use(api ?? null),
    metricsText: telemetry.metricsText,
  };
}
