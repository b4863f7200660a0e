import type { AuthorizedFacts, PolicyOptions, Store } from "mcpvault";
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
}

/** Guards an McpServer or Server of @modelcontextprotocol/sdk 1.x in place and returns it. */
export function withMcpVault<S>(server: S, options: WithMcpVaultOptions): S;

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
