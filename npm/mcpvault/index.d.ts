/** A limit on one argument of one tool (same shape as the core's JSON). */
export interface ArgLimit {
  tool: string;
  arg: string;
  op: "prefix" | "eq" | "one_of" | "max" | "min";
  value: string | number | boolean | Array<string | number>;
}

export interface Grant {
  tools: string[];
  /** Lifetime in seconds. */
  ttl: number;
  issuer: string;
  subject: string;
  audience?: string;
  maxDepth?: number;
  argLimits?: ArgLimit[];
}

export interface Restriction {
  tools?: string[];
  ttl?: number;
  audience?: string;
  maxDepth?: number;
  argLimits?: ArgLimit[];
}

export interface VerifyRequest {
  /** The requested tool (for `tools/call`). `tool` is accepted too. */
  requestedTool?: string;
  tool?: string;
  /** The MCP method; default `tools/call`. Other methods need a valid token but no tool grant. */
  method?: string;
  /** The call's arguments (a JSON object). */
  arguments?: Record<string, unknown>;
  /** This server's audience name. */
  audience?: string;
  /** Unix seconds; default the vault's clock. */
  now?: number;
}

export interface AuthorizedFacts {
  verified: true;
  tool?: string;
  tools: string[];
  issuer: string;
  subject: string;
  /** Earliest expiry of all blocks, unix seconds. */
  expiresAt: number;
  depth: number;
  audience: string | null;
  maxDepth: number | null;
  revocationIds: string[];
}

export type ErrorCode =
  | "malformed_token" | "invalid_key" | "bad_signature" | "expired" | "tool_not_allowed"
  | "argument_not_allowed" | "wrong_audience" | "depth_exceeded" | "check_failed"
  | "limits_exceeded" | "invalid_request" | "internal_error";

export class McpVaultError extends Error {
  readonly name: "McpVaultError";
  readonly code: ErrorCode;
  /** For denials decided by a check: the block (0 = authority) that refused. */
  readonly failedBlock: number | null;
  /** For denials decided by a check: its Datalog source. */
  readonly failedCheck: string | null;
}

export class MCPVault {
  /**
   * `now` returns unix seconds (default `Math.floor(Date.now() / 1000)`); `cache` keeps up to that many
   * verified signature chains (default 0: off). A cache hit re-runs every check with the current time and
   * request; a token differing in any byte, or another key, misses.
   */
  constructor(options?: { now?: () => number; cache?: number });
  cacheStats(): { hits: number; misses: number; entries: number; capacity: number };
  generateKeypair(): { privateKey: string; publicKey: string };
  mint(privateKey: string, grant: Grant, options?: { now?: number }): string;
  attenuate(token: string, restriction: Restriction, options?: { now?: number; onWarning?: (message: string) => void }): string;
  verify(token: string, publicKey: string, request: VerifyRequest): AuthorizedFacts;
  /** The token's blocks as the CLI's `inspect` JSON; not verified. */
  inspect(token: string): Record<string, unknown>;
}

/**
 * Browsers and workers (the `browser`/`default` entry): loads the .wasm; await once before
 * `new MCPVault()`. On Node the package loads synchronously and `init` is not needed.
 */
export function init(input?: string | URL | Response | BufferSource | WebAssembly.Module): Promise<void>;
