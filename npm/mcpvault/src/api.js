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
      throw new McpVaultError(e.code, e.message, e.failed_block, e.failed_check, e.detail);
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

  function limits(list) {
    if (list == null) return undefined;
    if (!Array.isArray(list)) throw invalid("argLimits must be an array");
    return list.map((l) => {
      if (l == null || typeof l !== "object") throw invalid("each argLimits entry must be an object");
      known(l, ["tool", "arg", "op", "value"], "an argLimits entry");
      return { tool: l.tool, arg: l.arg, op: l.op, value: l.value };
    });
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
      known(grant, ["tools", "ttl", "issuer", "subject", "audience", "maxDepth", "argLimits", "singleUse"], "grant");
      known(options ?? {}, ["now"], "mint options");
      const g = {
        tools: grant.tools,
        ttl: grant.ttl,
        issuer: grant.issuer,
        subject: grant.subject,
        audience: grant.audience ?? undefined,
        max_depth: grant.maxDepth ?? undefined,
        arg_limits: limits(grant.argLimits),
        single_use: flag(grant.singleUse, "singleUse"),
      };
      return call(wasm.mint(String(privateKey), JSON.stringify(g), this._time(options.now)));
    }

    /** Returns the narrower token; `options.onWarning(message)` hears what narrowed less than asked. */
    attenuate(token, restriction, options = {}) {
      if (restriction == null || typeof restriction !== "object") throw invalid("restriction must be an object");
      known(restriction, ["tools", "ttl", "audience", "maxDepth", "argLimits", "singleUse"], "restriction");
      known(options ?? {}, ["now", "onWarning"], "attenuate options");
      const r = {
        tools: restriction.tools ?? undefined,
        ttl: restriction.ttl ?? undefined,
        audience: restriction.audience ?? undefined,
        max_depth: restriction.maxDepth ?? undefined,
        arg_limits: limits(restriction.argLimits),
        single_use: flag(restriction.singleUse, "singleUse"),
      };
      const out = call(wasm.attenuate(String(token), JSON.stringify(r), this._time(options.now)));
      if (typeof options.onWarning === "function") out.warnings.forEach((w) => options.onWarning(w));
      return out.token;
    }

    /** Verifies `token` for one call; returns the authorized facts or throws McpVaultError. */
    verify(token, publicKey, request = {}) {
      if (request == null || typeof request !== "object") throw invalid("request must be an object");
      known(request, ["method", "requestedTool", "tool", "arguments", "audience", "now"], "request");
      const req = {
        method: request.method ?? "tools/call",
        tool: request.requestedTool ?? request.tool ?? undefined,
        arguments: request.arguments ?? {},
        audience: request.audience ?? undefined,
      };
      const args4 = [String(token), String(publicKey), JSON.stringify(req), this._time(request.now)];
      const out = this._verifier ? this._verifier.verify(...args4) : wasm.verify(...args4);
      return facts(call(out));
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

  /** The key that tells a retry of a JSON-RPC request from a replay (hex; the same on every host). */
  function callKey(requestId, method, tool, args) {
    return call(wasm.call_key(String(requestId ?? ""), String(method), tool == null ? "" : String(tool), JSON.stringify(args ?? {})));
  }

  const telemetry = makeTelemetry(otelApi ?? null);
  return {
    MCPVault, McpVaultError, auditAppend, auditVerify, callKey, ...makeGate(wasm, McpVaultError, call, facts, telemetry),
    /** Reports decisions through `api` (the `@opentelemetry/api` module; on Node it is found by itself when installed);
     * null turns spans and metrics off. */
    useOpenTelemetry: (api) => telemetry.use(api ?? null),
    metricsText: telemetry.metricsText,
  };
}
