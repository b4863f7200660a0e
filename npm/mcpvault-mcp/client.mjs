// withMcpVaultClient(client, options): a Client of @modelcontextprotocol/sdk 1.x that presents an mcpvault token with
// every message it sends and, for a token bound to a holder key, a fresh proof of each (SCHEMA.md, "Holder-bound
// tokens and proofs"). The SDK sends every request through `Protocol.request` (callTool, readResource, getPrompt,
// listTools, … and connect's initialize) and every notification through `Protocol.notification`: wrapping both on the
// instance reaches them all, whatever the transport.
import { MCPVault, McpVaultError, callTarget } from "mcpvault";

/** Where a message carries its token and its proof (the guard reads both there, on every transport). */
export const TOKEN_META_KEY = "mcpvault/token";
export const PROOF_META_KEY = "mcpvault/proof";
/** The header of a proof on HTTP (`mcpVaultFetch` copies a message's proof into it). */
export const PROOF_HEADER = "X-MCPVault-Proof";
const APPLIED = Symbol.for("mcpvault.withMcpVaultClient");
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * What the guard authorizes a message as, and so what its proof signs: `{ method, name?, arguments }`, answered by the
 * core (`callTarget`, the guard's own rule; `token`: the token sent with it, which the guard removes from the
 * arguments). Throws `invalid_request` for a message the guard refuses as malformed.
 */
export function proofTarget(method, params, token) {
  return callTarget(params === undefined ? { method } : { method, params }, token);
}

/**
 * Makes `client` (a Client of @modelcontextprotocol/sdk 1.x, connected or not) present `options.token` with every
 * request and notification it sends, and returns it. `holderKey`: the holder's private key (hex), for a token bound
 * to a holder key: every message then carries a fresh proof (`vault.signCall`). `audience`: the server's audience
 * name, when it has one (a proof binds it). `vault`: the MCPVault that signs (default a new one).
 */
export function withMcpVaultClient(client, options) {
  const fail = (m) => new TypeError(`withMcpVaultClient: ${m}`);
  if (typeof client?.request !== "function" || typeof client?.notification !== "function") {
    throw fail("expected a Client of @modelcontextprotocol/sdk 1.x");
  }
  if (client[APPLIED]) throw fail("already applied to this client");
  if (!isObject(options)) throw fail("options must be an object");
  for (const k of Object.keys(options)) {
    if (!["token", "holderKey", "audience", "vault"].includes(k)) throw fail(`unknown option ${JSON.stringify(k)}`);
  }
  const { token, holderKey, audience } = options;
  if (typeof token !== "string" || token === "") throw fail("token must be a non-empty string");
  if (holderKey !== undefined && (typeof holderKey !== "string" || holderKey === "")) {
    throw fail("holderKey must be the holder's private key (hex)");
  }
  if (audience !== undefined && (typeof audience !== "string" || audience === "")) throw fail("audience must be a non-empty string");
  if (options.vault !== undefined && typeof options.vault?.signCall !== "function") throw fail("vault must be an MCPVault");
  const vault = options.vault ?? (holderKey === undefined ? undefined : new MCPVault());

  /** The message with the token, and a proof signed now, in `params._meta`. */
  const stamp = (message) => {
    const params = isObject(message?.params) ? message.params : {};
    const meta = { ...(isObject(params._meta) ? params._meta : {}), [TOKEN_META_KEY]: token };
    if (holderKey !== undefined) {
      let target;
      try {
        target = proofTarget(message.method, params, token);
      } catch (e) {
        // a message the guard refuses as malformed goes as it is, with no proof: the server refuses it
        if (!(e instanceof McpVaultError) || e.code !== "invalid_request") throw e;
      }
      if (target) meta[PROOF_META_KEY] = vault.signCall(holderKey, token, { ...target, audience });
    }
    return { ...message, params: { ...params, _meta: meta } };
  };
  const request = client.request;
  const notification = client.notification;
  // the proof is signed when the message is sent: a retry the SDK sends again goes through here again
  client.request = function (message, resultSchema, requestOptions) {
    let stamped;
    try {
      stamped = stamp(message);
    } catch (e) {
      return Promise.reject(e);
    }
    return request.call(this, stamped, resultSchema, requestOptions);
  };
  client.notification = function (message, notificationOptions) {
    let stamped;
    try {
      stamped = stamp(message);
    } catch (e) {
      return Promise.reject(e);
    }
    return notification.call(this, stamped, notificationOptions);
  };
  Object.defineProperty(client, APPLIED, { value: true });
  return client;
}

/**
 * A `fetch` for `StreamableHTTPClientTransport(url, { fetch: mcpVaultFetch() })`: a POST whose body is one JSON-RPC
 * message with `params._meta["mcpvault/proof"]` is sent with that proof in the `X-MCPVault-Proof` header too. A server
 * with an HTTP layer in front of its message layer (mcpvault-express before withMcpVault, Python's
 * McpVaultMiddleware before with_mcpvault) hands the message on without its `_meta` proof; the inner layer reads the
 * header.
 */
export function mcpVaultFetch(inner = globalThis.fetch) {
  if (typeof inner !== "function") throw new TypeError("mcpVaultFetch: expected a fetch function");
  return (url, init) => {
    const body = init?.body;
    if (typeof body !== "string") return inner(url, init);
    let proof;
    try {
      const m = JSON.parse(body);
      proof = isObject(m) ? m.params?._meta?.[PROOF_META_KEY] : undefined;
    } catch {
      proof = undefined;
    }
    if (typeof proof !== "string") return inner(url, init);
    const headers = new Headers(init.headers);
    headers.set(PROOF_HEADER, proof);
    return inner(url, { ...init, headers });
  };
}
