// What withMcpVault and mcpvault-proxy share: which token a message presents, the decision on it, the MCP error
// for a refusal, tools/list filtering and the dry-run tool.
import { MCPVault, McpVaultError, authorizeCall, authorizeWithState, stripToken, challenge, assertPublicKey, CHECK_TOOL, storeOptionsError } from "mcpvault";

export const TOOLS_CALL = "tools/call";
export const TOOLS_LIST = "tools/list";
/** What replaces the token wherever a handler could otherwise read it. */
export const REDACTED = "[mcpvault: redacted]";
export { CHECK_TOOL };

const OPTIONS = ["publicKeyHex", "audience", "onDecision", "cache", "now", "checkTool", "revocationStore", "replayStore",
  "auditStore", "retryWindow"];
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

export class Policy {
  /** `who` names the caller in option errors ("withMcpVault", "mcpvault-proxy"). */
  constructor(options, who) {
    const fail = (m) => new TypeError(`${who}: ${m}`);
    if (!isObject(options)) throw fail("options must be an object");
    for (const k of Object.keys(options)) if (!OPTIONS.includes(k)) throw fail(`unknown option ${JSON.stringify(k)}`);
    const { publicKeyHex, audience, onDecision, now } = options;
    if (typeof publicKeyHex !== "string" || publicKeyHex === "") throw fail("publicKeyHex is required (the issuer's Ed25519 public key, hex)");
    if (audience !== undefined && (typeof audience !== "string" || audience === "")) throw fail("audience must be a non-empty string");
    if (onDecision !== undefined && typeof onDecision !== "function") throw fail("onDecision must be a function");
    if (now !== undefined && typeof now !== "function") throw fail("now must be a function returning unix seconds");
    const cache = options.cache ?? true;
    if (cache !== true && cache !== false && !(Number.isSafeInteger(cache) && cache >= 0)) throw fail("cache must be true, false or a number of entries");
    const checkTool = options.checkTool ?? false;
    if (typeof checkTool !== "boolean") throw fail(`checkTool must be true or false (the tool is named ${CHECK_TOOL})`);
    this.vault = new MCPVault({ cache: cache === true ? 1024 : cache === false ? 0 : cache, now });
    try {
      assertPublicKey(publicKeyHex, this.vault);
    } catch (e) {
      throw fail(`publicKeyHex: ${e.message}`);
    }
    this.publicKey = publicKeyHex;
    this.audience = audience;
    this.onDecision = onDecision;
    this.checkTool = checkTool ? CHECK_TOOL : null;
    const storeError = storeOptionsError(options);
    if (storeError) throw fail(storeError);
    this.stores = { revocationStore: options.revocationStore, replayStore: options.replayStore, auditStore: options.auditStore,
      retryWindow: options.retryWindow };
  }

  /**
   * The token a request presents: first `authInfo` set by mcpvault's middleware (its HTTP header), then
   * `params._meta.token` / `_meta["mcpvault/token"]`, then any other `authInfo.token`, then `fallback`.
   * Returns `{ token, source }` or null.
   */
  findToken(request, authInfo, fallback) {
    if (authInfo?.extra?.mcpvault && typeof authInfo.token === "string") return { token: authInfo.token, source: "authInfo" };
    const meta = isObject(request?.params) && isObject(request.params._meta) ? request.params._meta : {};
    for (const k of ["token", "mcpvault/token"]) {
      if (typeof meta[k] === "string" && meta[k] !== "") return { token: meta[k], source: `_meta.${k}` };
    }
    if (typeof authInfo?.token === "string" && authInfo.token !== "") return { token: authInfo.token, source: "authInfo" };
    if (typeof fallback === "string" && fallback !== "") return { token: fallback, source: "fallback" };
    return null;
  }

  /**
   * Finds the token, and authorizes what the message asks without it. Returns `{ token, request, facts }` or
   * `{ token, request, error }` where `request` is a copy of the message without the token (the message itself is
   * left as it is: in-process transports share it with the client); reports the decision to onDecision.
   */
  async decide(message, authInfo, fallback) {
    const found = this.findToken(message, authInfo, fallback);
    const token = found?.token;
    const request = withoutToken(message, token);
    // The middleware spent this request's nonces already when it had a replay store and its token is the one used.
    const replayChecked = found?.source === "authInfo" && authInfo?.extra?.mcpvault && authInfo.extra.mcpvaultReplayChecked === true;
    const out = await authorizeWithState(token, request,
      { publicKey: this.publicKey, audience: this.audience, vault: this.vault, ...this.stores, replayChecked });
    const tool = request?.method === TOOLS_CALL ? request.params?.name ?? null : null;
    const base = { method: request?.method ?? null, tool, requestId: request?.id ?? null, tokenSource: found?.source ?? null };
    if (out instanceof McpVaultError) {
      const { status } = challenge(out);
      this.report({ allowed: false, code: challenge(out).body.error.data.code, status, ...base, subject: null, issuer: null,
        message: out.message, detail: out.detail });
      return { token, request, error: out };
    }
    this.report({ allowed: true, code: null, status: 200, ...base, subject: out.subject, issuer: out.issuer, facts: out });
    return { token, request, facts: out };
  }

  report(decision) {
    if (!this.onDecision) return;
    try {
      this.onDecision(decision);
    } catch (e) {
      // A hook observes decisions; it cannot change one.
      console.error("mcpvault: onDecision threw:", e);
    }
  }

  /** The JSON-RPC error object of a refusal: the code, a message and `data: { code, status }`, no token content. */
  rpcError(error) {
    return challenge(error).body.error;
  }

  /** A throwable for SDK handlers: the SDK sends `code`, `message` and `data` as the JSON-RPC error. */
  throwable(error) {
    const e = this.rpcError(error);
    return Object.assign(new Error(e.message), { code: e.code, data: e.data });
  }

  /** `result` of tools/list with only the tools `facts` grants (and the dry-run tool on the first page). */
  filterTools(result, facts, request) {
    const allowed = new Set(facts.tools);
    const tools = Array.isArray(result?.tools) ? result.tools.filter((t) => allowed.has(t?.name)) : [];
    if (this.checkTool && request?.params?.cursor === undefined && !tools.some((t) => t.name === this.checkTool)) {
      tools.push(this.checkToolDefinition());
    }
    return { ...result, tools };
  }

  checkToolDefinition() {
    return {
      name: this.checkTool,
      title: "mcpvault: would this call be allowed?",
      description:
        "Dry run: says whether the presented mcpvault token allows calling `tool` with `arguments`, and which " +
        "check refused it. Nothing is called.",
      inputSchema: {
        type: "object",
        properties: {
          tool: { type: "string", description: "The tool to ask about." },
          arguments: { type: "object", description: "The arguments of the call (default {})." },
        },
        required: ["tool"],
      },
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    };
  }

  /** The dry-run tool's CallToolResult for `token` (the check tool needs no grant of its own). */
  dryRun(token, args) {
    const a = isObject(args) ? args : {};
    if (typeof a.tool !== "string" || a.tool === "" || (a.arguments !== undefined && !isObject(a.arguments))) {
      return { isError: true, content: [{ type: "text", text: "mcpvault.check takes { tool: string, arguments?: object }" }] };
    }
    const out = authorizeCall(token, { method: TOOLS_CALL, tool: a.tool, arguments: a.arguments ?? {} },
      { publicKey: this.publicKey, audience: this.audience, vault: this.vault });
    const answer = out instanceof McpVaultError
      ? { allowed: false, tool: a.tool, code: out.code, message: out.message, failedBlock: out.failedBlock, failedCheck: out.failedCheck }
      : { allowed: true, tool: a.tool, facts: out };
    return { content: [{ type: "text", text: JSON.stringify(answer) }], structuredContent: answer };
  }
}

/** A copy of a JSON-RPC message without the token in `params._meta` or in an argument value. */
export function withoutToken(message, token) {
  if (!isObject(message) || !isObject(message.params)) return message;
  const params = { ...message.params };
  if (isObject(params._meta)) params._meta = { ...params._meta };
  if (isObject(params.arguments)) params.arguments = { ...params.arguments };
  return stripToken({ ...message, params }, token);
}

/** `value` with every occurrence of `token` in its strings replaced by REDACTED (plain data only). */
export function redact(value, token) {
  if (!token) return value;
  if (typeof value === "string") return value.split(token).join(REDACTED);
  if (Array.isArray(value)) return value.map((v) => redact(v, token));
  if (isObject(value) && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, token)]));
  }
  return value;
}
