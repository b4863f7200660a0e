import type { AuthorizedFacts, MCPVault, PolicyOptions, Store } from "mcpvault";
import type { McpVaultDecision } from "mcpvault-express";

export interface WithMcpVaultOptions extends PolicyOptions {
  /** The issuer's Ed25519 public key, hex; checked now. */
  publicKeyHex: string;
  audience?: string;
  onDecision?: (decision: McpVaultDecision) => void;
  /** Called once per allowed decision whose `softRules` is not empty (the server's soft rules that fired); it
   * observes only. */
  onSoftRule?: (decision: McpVaultDecision) => void;
  /** Verified-chain cache: true (1,024, default), false, or a size. */
  cache?: boolean | number;
  now?: () => number;
  /** Add the `mcpvault.check` dry-run tool. */
  checkTool?: boolean;
  /** A store of mcpvault-store: revocation, single use (a call runs once; its retries get its recorded response),
   * the audit log. */
  store?: Store;
  /** Seconds a retry of the same single-use request is one (default 30). */
  retryWindow?: number;
  /** Open resources (prompts) to valid tokens that grant none; a token naming some is still held to them. */
  openResources?: boolean;
  openPrompts?: boolean;
  /** Most objects and arrays (default 10,000) and values (default 100,000) a message may hold: more is refused
   * `invalid_request` before the guard parses it (tools taking bulk rows raise them). */
  maxBodyContainers?: number;
  maxBodyValues?: number;
}

/** Guards an McpServer or Server of @modelcontextprotocol/sdk 1.x in place and returns it. */
export function withMcpVault<S>(server: S, options: WithMcpVaultOptions): S;

export interface WithMcpVaultClientOptions {
  /** The mcpvault token, sent in every message's `params._meta["mcpvault/token"]`. */
  token: string;
  /** The holder's Ed25519 private key (hex), for a token bound to a holder key: every message then carries a fresh
   * proof in `params._meta["mcpvault/proof"]`. */
  holderKey?: string;
  /** The server's audience name, when it has one (a proof binds it). */
  audience?: string;
  /** The vault that signs proofs (default a new `MCPVault`). */
  vault?: Pick<MCPVault, "signCall">;
}

/**
 * Makes a Client of @modelcontextprotocol/sdk 1.x (connected or not) send the token with every request and
 * notification, and a fresh proof of each when given the holder's key; returns the client.
 */
export function withMcpVaultClient<C>(client: C, options: WithMcpVaultClientOptions): C;

/** A `fetch` for `StreamableHTTPClientTransport(url, { fetch: mcpVaultFetch() })` that copies a one-message body's
 * `_meta["mcpvault/proof"]` into the `X-MCPVault-Proof` header (for servers behind mcpvault-express). */
export function mcpVaultFetch(inner?: typeof fetch): typeof fetch;

/** What a message's proof signs for `method` and `params`, answered by the core (mcpvault's `callTarget`, the guard's
 * own rule); throws `invalid_request` for a message the guard refuses as malformed. */
export function proofTarget(method: string, params?: unknown, token?: string):
  { method: string; name?: string; arguments: Record<string, unknown> };

export const TOKEN_META_KEY: "mcpvault/token";
export const PROOF_META_KEY: "mcpvault/proof";
export const PROOF_HEADER: "X-MCPVault-Proof";

export const CHECK_TOOL: "mcpvault.check";
/** What replaces the token in what handlers can read. */
export const REDACTED: "[mcpvault: redacted]";

export interface ProxyConfig {
  publicKey: string;
  audience?: string;
  upstream: { command: string; args: string[]; env: Record<string, string>; cwd: string } | { url: URL; headers: Record<string, string> };
  downstream: { stdio: true } | { http: { host: string; port: number; path: string } };
  tokenEnv: string;
  checkTool: boolean;
  cache: boolean | number;
  log: boolean;
  /** "memory", "sqlite:FILE" (absolute once checked) or "redis://HOST:PORT[/DB]". */
  store?: string;
  mappings?: PolicyOptions["mappings"];
  toolMappings?: PolicyOptions["toolMappings"];
  rules?: PolicyOptions["rules"];
  openResources?: boolean;
  openPrompts?: boolean;
  /** Most objects and arrays (default 10,000) and values (default 100,000) a message may hold. */
  maxBodyContainers?: number;
  maxBodyValues?: number;
  /** The HTTP downstream's sessions: at most `max` open (default 100), `perSubject` of one token subject (10), each
   * closed after `idleSeconds` (1800) without an allowed request or an upstream answer while none of its requests waits.
   * An initialize past a cap is 429 `rate_limited`. */
  sessions?: { max: number; perSubject: number; idleSeconds: number };
}
export class ConfigError extends Error {}
/** Checks a parsed config (see README.md); relative cwd against `base`. A bad policy (mappings, toolMappings,
 * rules) is a ConfigError here. */
export function checkConfig(raw: unknown, base?: string, env?: Record<string, string | undefined>): ProxyConfig;
export function loadConfig(file: string, env?: Record<string, string | undefined>): ProxyConfig;
export function startProxy(config: ProxyConfig, options?: { onDecision?: (d: McpVaultDecision) => void;
  onSoftRule?: (d: McpVaultDecision) => void; env?: Record<string, string | undefined> }):
  Promise<{ close(): Promise<void>; url?: string; closed?: Promise<void> }>;
export type { AuthorizedFacts };
