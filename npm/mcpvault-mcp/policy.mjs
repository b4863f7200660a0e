// What withMcpVault and mcpvault-proxy share: the guard of a server (the core's; no rule here), the token a message
// presents through the SDK's authInfo, onDecision, the MCP error of a refusal, tools/list filtering, and recording
// the response of a single-use call for its retries.
import { Guard, CHECK_TOOL, listMethods, storeOptionsError, toolHashes } from "mcpvault";

export const TOOLS_CALL = "tools/call";
export const TOOLS_LIST = "tools/list";
/** What replaces the token wherever a handler could otherwise read it. */
export const REDACTED = "[mcpvault: redacted]";
export { CHECK_TOOL };

const OPTIONS = ["publicKeyHex", "audience", "onDecision", "onSoftRule", "cache", "now", "checkTool", "store", "retryWindow",
  "mappings", "toolMappings", "rules", "openResources", "openPrompts", "maxBodyContainers", "maxBodyValues"];
/** The answers filtered to what the token grants: the core's list (lists, and the skills extension's answers). */
export const LISTS = new Set(listMethods());
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** What the guard reads of the SDK's `extra`: the MCP session id and the HTTP request's trace context headers (spans
 * name the session and continue the caller's trace; the guard decides nothing on them), and its `X-MCPVault-Proof`:
 * an HTTP layer in front (mcpvault-express) hands the message on without its `_meta` proof, so a holder-bound call
 * reaches this layer with its proof in that header only (as Python's message layer reads it). With no mcpvault HTTP
 * layer in front (`alone`), also the headers that layer would have decided: the token's (`Authorization`,
 * `X-MCPVault-Token`: one that differs from the `_meta` token is invalid_request), `Mcp-Method` and `Mcp-Name` (they
 * must agree with the message) and `X-MCPVault-Approval`, as Python's message layer reads them. */
function guardHeaders(extra, alone) {
  const h = {};
  if (typeof extra?.sessionId === "string" && extra.sessionId !== "") h["mcp-session-id"] = extra.sessionId;
  const req = extra?.requestInfo?.headers;
  const names = ["traceparent", "tracestate", "x-mcpvault-proof"];
  if (alone) names.push("authorization", "x-mcpvault-token", "mcp-method", "mcp-name", "x-mcpvault-approval");
  for (const k of names) {
    const v = req && typeof req === "object" ? req[k] : undefined;
    if (typeof v === "string") h[k] = v;
    else if (Array.isArray(v) && v.every((x) => typeof x === "string")) h[k] = v.join(", ");
  }
  return h;
}

/** The headers that carry a token, a proof or an approval. */
const SECRET_HEADERS = ["x-mcpvault-token", "x-mcpvault-proof", "x-mcpvault-approval"];

/** What the server's own tools/list handler is told when the guard reads its definitions: no credential at all. */
export const LISTING_HIDDEN = [...SECRET_HEADERS, "authorization"];

/** Headers a handler may read: the token replaced wherever it is, the `names` (default: the token, proof and
 * approval headers) replaced whole. */
export function redactHeaders(headers, token, names = SECRET_HEADERS) {
  const out = redact(headers, token);
  if (!isObject(out)) return out;
  const copy = { ...out };
  for (const k of Object.keys(copy)) if (names.includes(k.toLowerCase())) copy[k] = REDACTED;
  return copy;
}

/**
 * The hashes of the tool definitions a `tools/list` result holds, by name (the core's `toolHashes`), or `{}` when it
 * is not a valid list: a token pinning a tool is then refused, never allowed on a definition nobody checked.
 */
export function definitionsOf(result) {
  try {
    return toolHashes(result);
  } catch {
    return {};
  }
}

export class Policy {
  /** `who` names the caller in option errors ("withMcpVault", "mcpvault-proxy"). */
  constructor(options, who) {
    const fail = (m) => new TypeError(`${who}: ${m}`);
    if (!isObject(options)) throw fail("options must be an object");
    for (const k of Object.keys(options)) if (!OPTIONS.includes(k)) throw fail(`unknown option ${JSON.stringify(k)}`);
    const { publicKeyHex, audience, onDecision, onSoftRule, now } = options;
    if (typeof publicKeyHex !== "string" || publicKeyHex === "") throw fail("publicKeyHex is required (the issuer's Ed25519 public key, hex)");
    if (audience !== undefined && (typeof audience !== "string" || audience === "")) throw fail("audience must be a non-empty string");
    if (onDecision !== undefined && typeof onDecision !== "function") throw fail("onDecision must be a function");
    if (onSoftRule !== undefined && typeof onSoftRule !== "function") throw fail("onSoftRule must be a function");
    if (now !== undefined && typeof now !== "function") throw fail("now must be a function returning unix seconds");
    const cache = options.cache ?? true;
    if (cache !== true && cache !== false && !(Number.isSafeInteger(cache) && cache >= 0)) throw fail("cache must be true, false or a number of entries");
    const checkTool = options.checkTool ?? false;
    if (typeof checkTool !== "boolean") throw fail(`checkTool must be true or false (the tool is named ${CHECK_TOOL})`);
    const storeError = storeOptionsError(options);
    if (storeError) throw fail(storeError);
    for (const k of ["openResources", "openPrompts"]) {
      if (options[k] !== undefined && typeof options[k] !== "boolean") throw fail(`${k} must be true or false`);
    }
    try {
      this.guard = new Guard({
        publicKey: publicKeyHex, audience, store: options.store, retryWindow: options.retryWindow, checkTool,
        cache: cache === true ? 1024 : cache === false ? 0 : cache, now,
        mappings: options.mappings, toolMappings: options.toolMappings, rules: options.rules,
        openResources: options.openResources, openPrompts: options.openPrompts,
        maxBodyContainers: options.maxBodyContainers, maxBodyValues: options.maxBodyValues,
      });
    } catch (e) {
      // the core names what is wrong: the key, or the policy (mappings, toolMappings, rules)
      throw fail(e.code === "invalid_key" ? `publicKeyHex: ${e.message}` : e.message);
    }
    this.onDecision = onDecision;
    this.onSoftRule = onSoftRule;
    this.checkTool = checkTool ? CHECK_TOOL : null;
  }

  /**
   * Decides a JSON-RPC message (the core guard: token, method, revocation, single use, audit). The token is read
   * from `authInfo` set by mcpvault's middleware first, then `params._meta`, then any other `authInfo.token`, then
   * `fallback`. `sessionSubject`: the subject that opened this session. Resolves to the guard's outcome; reports
   * every decision to onDecision, and each allowed one whose soft rules fired to onSoftRule. `toolDefinitions`: the
   * hashes of the server's current tool definitions (`definitionsOf`), for tokens that pin tools.
   */
  async decide(message, authInfo, fallback, sessionSubject, extra, toolDefinitions) {
    return this.#decide({ body: message, sessionSubject, toolDefinitions }, authInfo, fallback, extra);
  }

  /**
   * Decides an HTTP request that carries no JSON-RPC message (the SSE `GET`, a session's `DELETE`, any other verb):
   * the core decides it as `http/GET` etc., with the store (revocation, audit) and `sessionSubject` (the subject that
   * opened the session it names: another subject's token is `session_mismatch`). `authInfo` and `extra` as for decide.
   */
  async decideRequest(httpMethod, authInfo, sessionSubject, extra) {
    return this.#decide({ httpMethod, sessionSubject }, authInfo, undefined, extra);
  }

  async #decide(parts, authInfo, fallback, extra) {
    const ours = Boolean(authInfo?.extra?.mcpvault) && typeof authInfo.token === "string";
    const outcome = await this.guard.decide({
      ...parts,
      headers: guardHeaders(extra, !ours),
      transportToken: ours ? authInfo.token : undefined,
      fallbackToken: !ours && typeof authInfo?.token === "string" && authInfo.token !== "" ? authInfo.token : fallback,
      // the middleware spent this request's nonces already when it had a store and did not defer
      replayChecked: ours && authInfo.extra.mcpvaultReplayChecked === true,
    });
    if (this.onDecision || this.onSoftRule) reportDecisions(this.guard.decisionsOf(outcome), this, "mcpvault");
    return outcome;
  }

  /** The facts of an allowed outcome. */
  facts(outcome) {
    return this.guard.factsOf(outcome);
  }

  /** A throwable for SDK handlers: the SDK sends `code`, `message` and `data` as the JSON-RPC error. */
  throwable(outcome) {
    const e = outcome.response?.error ?? { code: -32603, message: "internal error" };
    return Object.assign(new Error(e.message), { code: e.code, data: e.data });
  }

  /** `result` of tools/list with only the tools the outcome grants (and the dry-run tool on the first page). */
  filterTools(result, outcome, request) {
    return this.guard.filterTools(result, outcome, request?.params?.cursor == null);
  }

  /** A list answer (tools, resources, resource templates, prompts) with only what the outcome grants. */
  filterResult(method, result, outcome, request) {
    if (method === TOOLS_LIST) return this.filterTools(result, outcome, request);
    return this.guard.filterList(method, result, outcome);
  }

  /** Records the response of an allowed single-use call for its retries (a no-op for others). */
  async complete(outcome, response) {
    try {
      await this.guard.complete(outcome, response);
    } catch (e) {
      // the call ran; a retry will be told in_flight instead of getting this response
      console.error("mcpvault: recording a response failed:", e?.message ?? e);
    }
  }
}

/**
 * Hands each decision to `hooks.onDecision`, and each allowed one whose soft rules fired (`softRules` not empty) to
 * `hooks.onSoftRule`. Hooks observe decisions; they cannot change one (what they throw is logged).
 */
export function reportDecisions(decisions, hooks, who) {
  for (const d of decisions) {
    for (const [name, hook] of [["onDecision", hooks.onDecision], ["onSoftRule", d.allowed && d.softRules?.length > 0 && hooks.onSoftRule]]) {
      if (!hook) continue;
      try {
        hook(d);
      } catch (e) {
        console.error(`${who}: ${name} threw:`, e);
      }
    }
  }
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

/** The response to record for a handler's result or thrown error. */
export function responseOf(result, error) {
  if (error === undefined) return { result };
  return { error: { code: Number.isInteger(error?.code) ? error.code : -32603, message: String(error?.message ?? error), ...(error?.data !== undefined ? { data: error.data } : {}) } };
}
