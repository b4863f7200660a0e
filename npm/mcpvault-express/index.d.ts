import type { Decision, PolicyOptions, Store } from "mcpvault";

/** A decision as `onDecision` hears it: mcpvault's `Decision` (one per message; one for a refused request). */
export type McpVaultDecision = Decision;

export interface McpVaultMiddlewareOptions extends PolicyOptions {
  /** The issuer's Ed25519 public key, hex. Checked when the middleware is created. */
  publicKeyHex: string;
  /** This server's audience name; tokens restricted to another audience are refused. */
  audience?: string;
  /** Called once per decision (allow or deny); it observes, it cannot change the decision. */
  onDecision?: (decision: McpVaultDecision) => void;
  /** Called once per allowed decision whose `softRules` is not empty (the server's soft rules that fired); it
   * observes only. */
  onSoftRule?: (decision: McpVaultDecision) => void;
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
  /** Most objects and arrays (default 10,000) and values (default 100,000) a body may hold: more is a 400
   * `invalid_request` before the guard parses it (tools taking bulk rows raise them). */
  maxBodyContainers?: number;
  maxBodyValues?: number;
  /** A store of mcpvault-store: revocation, single-use spends, the audit log. */
  store?: Store;
  /** Seconds a retry of the same single-use request is one (default 30). */
  retryWindow?: number;
  /** Open resources (prompts) to valid tokens that grant none; a token naming some is still held to them. */
  openResources?: boolean;
  openPrompts?: boolean;
  /** Leave single-use spends to an inner layer that sees responses (withMcpVault with a store); implies innerGuard. */
  deferSpend?: boolean;
  /**
   * withMcpVault (another mcpvault layer) is behind this middleware and decides each message again: the proofs and
   * approvals spent here and the dry-run tool go on to it, and it checks pinned tools. Default false: this middleware
   * is the last guard (the dry-run tool is refused, pinned tools are checked against `toolDefinitions`).
   */
  innerGuard?: boolean;
  /**
   * Without innerGuard: the hashes of the server's current tool definitions (`toolHashes` of its tools/list), or a
   * function giving them, called only when a pinned call of a valid token needs them. None: pinned calls are refused.
   */
  toolDefinitions?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);
}

/** `(req, res, next)`: works with Express 4 and 5, Connect and node:http. */
export type McpVaultMiddleware = (req: any, res: any, next: (err?: unknown) => void) => void;

/**
 * `auth()` authorizes whatever the JSON-RPC body asks; `auth("db_query")` serves one tool. On success sets
 * `req.mcpvaultFacts` and `req.auth` (the MCP SDK's AuthInfo: token, clientId = subject, scopes = the granted
 * tools then the granted scopes, expiresAt, extra.mcpvault = facts) and removes the token from the body's `_meta`.
 */
export function createMcpVaultMiddleware(options: McpVaultMiddlewareOptions): (tool?: string) => McpVaultMiddleware;

/**
 * A handler (Express, Connect, node:http) answering with the Prometheus text exposition of every mcpvault guard's
 * decisions in this process (counting starts when the first handler is created): `app.get("/metrics", metricsHandler())`.
 */
export function metricsHandler(): (req: any, res: any) => void;
