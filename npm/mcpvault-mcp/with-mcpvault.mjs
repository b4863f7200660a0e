// withMcpVault(server, options): every tools/call of an McpServer/Server of @modelcontextprotocol/sdk 1.x is
// authorized before its handler runs; tools/list shows only the granted tools.
//
// The SDK keeps request handlers in `Protocol._requestHandlers` (a Map) and McpServer installs its tools/call and
// tools/list handlers lazily, on the first registerTool. Wrapping `get` on that Map wraps whatever handler is there
// when a request arrives: it works whether withMcpVault runs before or after tools are registered, and survives a
// handler being replaced.
import { Policy, TOOLS_CALL, TOOLS_LIST, REDACTED, redact } from "./policy.mjs";

const APPLIED = Symbol.for("mcpvault.withMcpVault");
const METHOD_NOT_FOUND = -32601;

/**
 * Guards `server` (an McpServer or a low-level Server) and returns it. options: `publicKeyHex` (required),
 * `audience`, `onDecision(decision)`, `cache` (default true), `now`, `checkTool` (true: add the `mcpvault.check`
 * dry-run tool). Apply before `connect` when using checkTool on a server with no tools.
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

  const wrapped = new WeakMap();
  const memo = (h, make) => {
    if (h === undefined) return make(undefined);
    if (!wrapped.has(h)) wrapped.set(h, make(h));
    return wrapped.get(h);
  };
  const get = Map.prototype.get;
  handlers[APPLIED] = true;
  handlers.get = function (method) {
    const h = get.call(this, method);
    if (method === TOOLS_CALL) return memo(h, (inner) => guardCall(policy, inner));
    if (method === TOOLS_LIST && (h !== undefined || policy.checkTool)) return memo(h, (inner) => guardList(policy, inner));
    return h;
  };
  return server;
}

/** The extra handed to the handler: the token redacted everywhere it could be read, the facts in authInfo. */
function handlerExtra(extra, request, token, facts) {
  const info = extra?.authInfo;
  const authInfo = info
    ? { ...info, token: info.token === token ? REDACTED : info.token, extra: { ...info.extra, mcpvault: facts } }
    : { token: REDACTED, clientId: facts.subject, scopes: facts.tools, expiresAt: facts.expiresAt, extra: { mcpvault: facts } };
  const out = { ...extra, authInfo, _meta: request.params?._meta };
  if (extra?.requestInfo) out.requestInfo = { ...extra.requestInfo, headers: redact(extra.requestInfo.headers, token) };
  return out;
}

function guardCall(policy, inner) {
  return async (request, extra) => {
    if (policy.checkTool && request?.params?.name === policy.checkTool) {
      const found = policy.findToken(request, extra?.authInfo);
      return policy.dryRun(found?.token, request.params.arguments);
    }
    const d = await policy.decide(request, extra?.authInfo);
    if (d.error) throw policy.throwable(d.error);
    if (inner === undefined) throw Object.assign(new Error("Method not found"), { code: METHOD_NOT_FOUND });
    return inner(d.request, handlerExtra(extra, d.request, d.token, d.facts));
  };
}

function guardList(policy, inner) {
  return async (request, extra) => {
    const d = await policy.decide(request, extra?.authInfo);
    if (d.error) throw policy.throwable(d.error);
    const result = inner === undefined ? { tools: [] } : await inner(d.request, handlerExtra(extra, d.request, d.token, d.facts));
    return policy.filterTools(result, d.facts, d.request);
  };
}
