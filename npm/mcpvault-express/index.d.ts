import type { AuthorizedFacts, ErrorCode, Store } from "mcpvault";

export interface McpVaultDecision {
  allowed: boolean;
  /** The refusal code (`missing_token`, `tool_not_allowed`, …); null when allowed. */
  code: ErrorCode | null;
  /** The HTTP status sent: 200 when allowed (the route answers), else 400/401/403/409/500. */
  status: number;
  /** The JSON-RPC method decided on (`tools/call`, `initialize`, …, or `http/GET` for a body-less request). */
  method: string | null;
  tool: string | null;
  /** The JSON-RPC id of the message, as text, if any. */
  requestId: string | null;
  /** Where the token was found: "header", "bearer", "_meta.token", "_meta.mcpvault/token"; null when none. */
  tokenSource: string | null;
  subject: string | null;
  issuer: string | null;
  facts?: AuthorizedFacts;
  /** Refusals: the message sent to the caller, and the detail for server-side logs only. */
  message?: string | null;
  detail?: string | null;
  /** A retry answered with the recorded response of its first execution. */
  replayedResponse?: boolean;
}

export interface McpVaultMiddlewareOptions {
  /** The issuer's Ed25519 public key, hex. Checked when the middleware is created. */
  publicKeyHex: string;
  /** This server's audience name; tokens restricted to another audience are refused. */
  audience?: string;
  /** Called once per decision (allow or deny); it observes, it cannot change the decision. */
  onDecision?: (decision: McpVaultDecision) => void;
  /** Verified-chain cache: true (default, 1,024 entries), false, or a number of entries. */
  cache?: boolean | number;
  /** Clock in unix seconds (default Date.now). */
  now?: () => number;
  /** `realm` of the WWW-Authenticate challenge (default "mcpvault"). */
  realm?: string;
  /** An OAuth protected-resource metadata URL, advertised in WWW-Authenticate. */
  resourceMetadata?: string;
  /** The largest body read when no body parser ran before (default 4 MiB). */
  maxBodyBytes?: number;
  /** A store of mcpvault-store: revocation, single-use spends, the audit log. */
  store?: Store;
  /** Seconds a retry of the same single-use request is one (default 30). */
  retryWindow?: number;
  /** Leave single-use spends to an inner layer that sees responses (withMcpVault with a store). */
  deferSpend?: boolean;
}

/** `(req, res, next)`: works with Express 4 and 5, Connect and node:http. */
export type McpVaultMiddleware = (req: any, res: any, next: (err?: unknown) => void) => void;

/**
 * `auth()` authorizes whatever the JSON-RPC body asks; `auth("db_query")` serves one tool. On success sets
 * `req.mcpvaultFacts` and `req.auth` (the MCP SDK's AuthInfo: token, clientId = subject, scopes = tools,
 * expiresAt, extra.mcpvault = facts) and removes the token from the body's `_meta`.
 */
export function createMcpVaultMiddleware(options: McpVaultMiddlewareOptions): (tool?: string) => McpVaultMiddleware;
