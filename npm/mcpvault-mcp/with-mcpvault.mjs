// withMcpVault(server, options): every request an McpServer/Server of @modelcontextprotocol/sdk 1.x handles
// (tools, resources, prompts, completion, logging, …; all but the lifecycle's initialize and ping) is decided by the
// core guard before its handler runs; tools/list shows only the granted tools; a single-use call runs once and its
// retries get its recorded response.
//
// The SDK keeps request handlers in `Protocol._requestHandlers` (a Map) and McpServer installs its handlers lazily,
// on the first registerTool. Wrapping `get` on that Map wraps whatever handler is there when a request arrives: it
// works whether withMcpVault runs before or after tools are registered, and survives a handler being replaced.
import { Policy, TOOLS_CALL, TOOLS_LIST, LISTS, REDACTED, LISTING_HIDDEN, redactHeaders, responseOf, definitionsOf } from "./policy.mjs";

const APPLIED = Symbol.for("mcpvault.withMcpVault");
const METHOD_NOT_FOUND = -32601;
/** Sent before a client can present anything: not guarded (a token-bearing transport guards them, see README). */
const LIFECYCLE = new Set(["initialize", "ping"]);

/**
 * Guards `server` (an McpServer or a low-level Server) and returns it. options: `publicKeyHex` (required),
 * `audience`, `onDecision(decision)`, `onSoftRule(decision)` (each allowed decision whose soft rules fired), `cache`
 * (default true), `now`, `checkTool` (true: add the `mcpvault.check` dry-run tool), `store` (mcpvault-store:
 * revocation, single use with recorded responses, audit), `retryWindow`; the server's policy, decided by the core:
 * `mappings`, `toolMappings`, `rules` (SCHEMA.md, "Server policy").
 * Apply before `connect` when using checkTool on a server with no tools.
 */
export function withMcpVault(server, options) {
  const low = server?.server ?? server;
  const handlers = low?._requestHandlers;
  if (!(handlers instanceof Map) || typeof low.setRequestHandler !== "function") {
    throw new TypeError("withMcpVault: expected an McpServer or Server of @modelcontextprotocol/sdk 1.x");
  }
  if (handlers[APPLIED]) throw new TypeError("withMcpVault: already applied to this server");
  const policy = new Policy(options, "withMcpVault");
  if (policy.checkTool && !low.getCapabilities?.().tools) low.registerCapabilities({ tools: {} });

  const wrapped = new Map();
  // one guard per method and handler the server registered (the methods are the server's, so this stays small)
  const memo = (method, h) => {
    let byHandler = wrapped.get(method);
    if (!byHandler) wrapped.set(method, (byHandler = new WeakMap()));
    if (!byHandler.has(h)) byHandler.set(h, guard(policy, method, h, definitions, low));
    return byHandler.get(h);
  };
  const get = Map.prototype.get;
  // the server's current tool definitions, from its own tools/list handler at the time of the call: a token pinning
  // a tool calls it only as it was pinned (SCHEMA.md, "Pinned tool definitions")
  const definitions = async (extra) => {
    const list = get.call(handlers, TOOLS_LIST);
    if (list === undefined) return {};
    try {
      return definitionsOf(await list({ method: TOOLS_LIST, params: {} }, listingExtra(extra)));
    } catch {
      return {};
    }
  };
  handlers[APPLIED] = true;
  handlers.get = function (method) {
    const h = get.call(this, method);
    if (LIFECYCLE.has(method)) return h;
    // A method the server does not implement is guarded too: the SDK would answer -32601 before the token is read,
    // telling a caller without one which methods exist. The guard decides first; a valid token then gets the
    // server's fallbackRequestHandler, or -32601. Made per request, never kept: the method is the caller's string,
    // and a guard kept per name would let anyone grow the server's memory one invented method at a time.
    if (h === undefined) return guard(policy, method, low.fallbackRequestHandler, definitions, low);
    return memo(method, h);
  };
  return server;
}

/** The extra the server's own tools/list handler gets when the guard reads the definitions: no token, proof or
 * approval anywhere (no authInfo, no _meta; those headers replaced), as Python's listing request. */
function listingExtra(extra) {
  const out = { ...extra, authInfo: undefined, _meta: undefined };
  if (extra?.requestInfo) out.requestInfo = { ...extra.requestInfo, headers: redactHeaders(extra.requestInfo.headers, undefined, LISTING_HIDDEN) };
  return out;
}

/** The extra handed to the handler: the token redacted everywhere it could be read, the facts in authInfo. */
function handlerExtra(extra, request, token, facts, low) {
  const info = extra?.authInfo;
  const authInfo = info
    ? { ...info, token: info.token === token ? REDACTED : info.token, extra: { ...info.extra, mcpvault: facts } }
    : { token: REDACTED, clientId: facts.subject, scopes: [...facts.tools, ...(facts.scopes ?? [])], expiresAt: facts.expiresAt, extra: { mcpvault: facts } };
  const out = { ...extra, authInfo, _meta: request.params?._meta };
  if (extra?.requestInfo) out.requestInfo = { ...extra.requestInfo, headers: redactHeaders(extra.requestInfo.headers, token) };
  // the SDK's task store for this request records the request as it came (its _meta token, proof and approvals
  // included) with every task it creates: a persistent store wrote bearer tokens; this one records what was handed on
  if (extra?.taskStore && typeof low?.requestTaskStore === "function") out.taskStore = low.requestTaskStore(request, extra.sessionId);
  return out;
}

function guard(policy, method, inner, definitions, low) {
  return async (request, extra) => {
    // the SDK hands handlers the JSON-RPC request; the guard sees it as it came
    const message = { jsonrpc: "2.0", id: request?.id ?? extra?.requestId, ...request };
    // read only when the guard says a pinned call of a valid token needs them (needs_tool_definitions)
    const defs = method === TOOLS_CALL ? () => definitions(extra) : undefined;
    const outcome = await policy.decide(message, extra?.authInfo, undefined, undefined, extra, defs);
    if (!outcome.allowed) throw policy.throwable(outcome);
    if (outcome.answers.length > 0) {
      // answered by the guard itself: the dry-run tool, or a retry of a single-use call with its recorded response
      const a = outcome.answers[0];
      if (a.error) throw Object.assign(new Error(a.error.message), { code: a.error.code, data: a.error.data });
      return a.result;
    }
    const forwarded = outcome.forward ?? message;
    const facts = policy.facts(outcome);
    if (inner === undefined) {
      // a server with no tools of its own lists the dry-run tool
      if (method === TOOLS_LIST && policy.checkTool) return policy.filterTools({ tools: [] }, outcome, forwarded);
      const e = Object.assign(new Error("Method not found"), { code: METHOD_NOT_FOUND });
      // a single-use call spent for a method the server lacks: its retries get this answer, not in_flight
      await policy.complete(outcome, responseOf(undefined, e));
      throw e;
    }
    let result;
    try {
      result = await inner(forwarded, handlerExtra(extra, forwarded, outcome.token, facts, low));
    } catch (e) {
      await policy.complete(outcome, responseOf(undefined, e));
      throw e;
    }
    await policy.complete(outcome, responseOf(result));
    return LISTS.has(method) ? policy.filterResult(method, result, outcome, forwarded) : result;
  };
}
