/**
 * How an argument is limited: `op` and `value`, as in the core's JSON (SCHEMA.md lists the check each writes).
 * A call whose argument is missing, of another type or outside the limit is refused (`argument_not_allowed`).
 */
export type ArgRule =
  /** A string starting with `value`. */
  | { op: "prefix"; value: string }
  /** Equal to `value`, with the same type. */
  | { op: "eq"; value: string | number | boolean }
  /** Equal to one of `value`: all strings or all integers. */
  | { op: "one_of"; value: string[] | number[] }
  /**
   * At most / at least `value`. An integer `value` is an integer limit (the argument must be an integer); any other
   * number (`99.5`) a number limit: any JSON number, compared as a double (`1e2` is 100, `-0` is 0, an integer beyond
   * 2^53 is refused). In JavaScript `100.0` is `100`: `number: true` makes a whole `value` a number limit.
   */
  | { op: "max" | "min"; value: number; number?: boolean }
  /** An absolute path inside the directory `value` (or the directory itself), decided on the normalised path: `..`
   * above the root, `%`, `\`, NUL and look-alike separators are refused; `/srv/publicity` is not under `/srv/public`. */
  | { op: "under"; value: string }
  /** A URL the pattern `SCHEME://HOST[:PORT][/PATH]` allows; the host exact or `*.example.com` (any subdomain, not
   * `example.com` itself). Parsed as a browser does; userinfo (`https://a.example.com@evil.net`) is refused. */
  | { op: "url"; value: string }
  /** An IPv4 or IPv6 address inside the network `value` (`10.0.0.0/8`); `::ffff:10.0.0.1` is `10.0.0.1`. */
  | { op: "cidr"; value: string }
  /** The whole string matches the shell-style wildcard `value` (`*`, `?`; no `[`, `]`, `^`). */
  | { op: "glob"; value: string }
  /** The string matches the regular expression `value` (unanchored: write `^…$`; no `\` or `"`; linear time). */
  | { op: "matches"; value: string }
  /** An array of at most / at least `value` elements. */
  | { op: "max_items" | "min_items"; value: number };

/**
 * A limit on one argument of one tool the token grants (a limit on any other tool is `invalid_request` at mint and
 * attenuate). `arg` is where the argument is: a top-level key (`path`), a dotted path into nested objects and arrays
 * (`config.mode`, `rows.0.id`), or a JSON pointer (`/a.b`, for keys holding dots); ending in `[*]` (`items[*]`), the
 * limit holds for every element of the array there (`eq`, `one_of`, `prefix`, `glob`, `matches`, integer `max`/`min`).
 */
export type ArgLimit = { tool: string; arg: string } & ArgRule;

/** Calls per period (SCHEMA.md, "Quotas"): every `tools/call`, or one tool's. Shared with every derived token. */
export interface Rate {
  tool?: string;
  /** Most calls per period (at least 1). */
  max: number;
  /** Seconds (1 to 366 days); windows are aligned on the epoch. */
  period: number;
}

/** A cap on the sum of a numeric argument of one tool per period (APOA's `max_daily_amount`). */
export interface Budget {
  tool: string;
  /** The argument counted; a call must carry it as a number from 0 to 2^53. */
  arg: string;
  max: number;
  period: number;
}

export interface Grant {
  /** Tools the token may call (at least one tool or one scope). */
  tools?: string[];
  /** Scopes (`filesystem:files:read`): a call the server maps to one of them is allowed too. */
  scopes?: string[];
  /** MCP resources the token may read or subscribe to: URI prefixes, or globs with `*`/`?`. None: no resource. */
  resources?: string[];
  /** MCP prompts the token may get, by name. None: no prompt. */
  prompts?: string[];
  /** Lifetime in seconds. */
  ttl: number;
  issuer: string;
  subject: string;
  audience?: string;
  maxDepth?: number;
  argLimits?: ArgLimit[];
  /** Single-use: a random nonce a verifier's replay store lets one tools/call spend. */
  singleUse?: boolean;
  /** Calls-per-period quotas, counted by the guard's store. */
  rate?: Rate | Rate[];
  /** Budgets on numeric arguments, counted by the guard's store. */
  budget?: Budget | Budget[];
  /** Bind the token to this holder's Ed25519 public key (hex): every call needs a proof signed by it. */
  holder?: string;
  /** Pin tools to the hash of their definition (`toolHashes`): `{ search: "HEX" }`. */
  pin?: Record<string, string>;
  /** Calls of a tool that need `needed` (default 1) signed approvals by the listed keys. */
  requireApproval?: ApprovalRequirement[];
}

/** Calls of `tool` need `needed` (default 1) signed approvals by distinct `approvers` (Ed25519 public keys, hex). */
export interface ApprovalRequirement {
  tool: string;
  approvers: string[];
  needed?: number;
}

export interface Restriction {
  tools?: string[];
  /** Scopes to keep; with `tools` and no `scopes`, none. */
  scopes?: string[];
  /** Resources to keep (every block's set must allow a read). */
  resources?: string[];
  /** Prompts to keep. */
  prompts?: string[];
  ttl?: number;
  audience?: string;
  maxDepth?: number;
  argLimits?: ArgLimit[];
  /** Make the attenuated token (and every token derived from it) single-use. */
  singleUse?: boolean;
  /** Further quotas: the parent's still count, so a child can only lower what is left. */
  rate?: Rate | Rate[];
  budget?: Budget | Budget[];
  /** Bind the token to this holder key (a bound token: only its holder may rebind it). */
  holder?: string;
  /** Further pins (a block cannot remove one). */
  pin?: Record<string, string>;
  /** Further approval requirements. */
  requireApproval?: ApprovalRequirement[];
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
  /** The scope the server maps this call to (the guard sets it from its policy). */
  scope?: string;
  /** The resource URI of `resources/read` / `resources/subscribe`. */
  resource?: string;
  /** The prompt name of `prompts/get`. */
  prompt?: string;
  /** The call's proof, for a holder-bound token (`signCall`). */
  proof?: string;
  /** The hash of the tool's current definition (`toolHashes`), for a token that pins it. */
  toolDefinition?: string;
  /** Signed approvals of the call (`approve`). */
  approvals?: string[];
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
  /** Nonces of single-use blocks (absent when none). */
  nonces?: string[];
  /** Scopes every block allows (absent when none). */
  scopes?: string[];
  /** The scope the call was mapped to. */
  scope?: string;
  /** Each granting block's resource patterns (globs), authority first (absent when none is granted). */
  resources?: string[][];
  /** Prompts every granting block allows (absent when none is granted). */
  prompts?: string[];
  /** The holder key the token is bound to (the call carried a proof signed by it). */
  holder?: string;
  /** The nonce of that proof, for a store to spend (a proof is used once). */
  proofNonce?: string;
  /** The tools the token pins, to the hashes of their definitions. */
  pins?: Record<string, string[]>;
  /** The approvals that counted for this call. */
  approvals?: Array<{ approver: string; nonce: string; expiresAt: number }>;
  /** Every block's quotas, authority first (absent when none), each counted under its block's revocation id. */
  quotas?: Array<{
    kind: "rate" | "budget";
    block: number;
    revocationId: string;
    tool?: string;
    arg?: string;
    max: number;
    period: number;
  }>;
}

/** Every code of the core's `ERROR_CODES` (src/error.rs), in its order; a test keeps the two equal. */
export type ErrorCode =
  | "missing_token" | "malformed_token" | "invalid_key" | "bad_signature" | "expired" | "tool_not_allowed"
  | "argument_not_allowed" | "resource_not_allowed" | "prompt_not_allowed" | "wrong_audience" | "depth_exceeded" | "check_failed"
  | "limits_exceeded" | "revoked" | "replayed" | "in_flight" | "session_mismatch" | "rate_limited" | "budget_exceeded" | "proof_required" | "bad_proof" | "proof_expired" | "tool_definition_changed" | "approval_required" | "rule_violation" | "invalid_request" | "internal_error";

export class McpVaultError extends Error {
  readonly name: "McpVaultError";
  readonly code: ErrorCode;
  /** For denials decided by a check: the block (0 = authority) that refused. */
  readonly failedBlock: number | null;
  /** For denials decided by a check: its Datalog source. */
  readonly failedCheck: string | null;
  /** Why, for server-side logs only (signature and format failures are opaque in `message`); not enumerable. */
  readonly detail: string;
  /** For `approval_required`: the request hash to approve, who may approve and how many must. */
  readonly approval?: { requestHash: string; approvers: string[]; needed: number };
  constructor(code: string, message: string, failedBlock?: number | null, failedCheck?: string | null, detail?: string);
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
  /**
   * The proof of one call of a holder-bound token, signed with the holder's private key (hex): send it as
   * `params._meta["mcpvault/proof"]` or the `X-MCPVault-Proof` header. Fresh for 60 s, used once.
   */
  signCall(
    holderPrivateKey: string,
    token: string,
    call: CallOfToken,
    options?: { now?: number },
  ): string;
  /** The request hash of one call of `token`: what an approver signs (`approve`). */
  requestHash(token: string, call: CallOfToken): string;
  /**
   * An approval of `requestHash` signed with the approver's private key (hex), valid `ttl` seconds (default 300, at
   * most 3600): send it in `params._meta["mcpvault/approvals"]`. Used once.
   */
  approve(approverPrivateKey: string, requestHash: string, options?: { ttl?: number; now?: number }): string;
  /** The token's blocks as the CLI's `inspect` JSON; not verified. */
  inspect(token: string): Record<string, unknown>;
}

/** The definition hash of every tool of a `tools/list` result (or response, or tools array), by name: for `pin`. */
export function toolHashes(result: unknown): Record<string, string>;

/** What `signCall` and `requestHash` name: `{ tool, arguments }`, `{ method, name }`, or the JSON-RPC `message`
 * itself (the core reads what the guard authorizes it as: `callTarget`); and the server's `audience`. */
export interface CallOfToken {
  tool?: string;
  arguments?: Record<string, unknown>;
  method?: string;
  name?: string;
  message?: { method: string; params?: unknown; [key: string]: unknown };
  audience?: string;
}

/** What a proof or an approval of `message` signs, by the guard's own rule (throws `invalid_request` for a message
 * the guard refuses as malformed). */
export function callTarget(message: { method: string; params?: unknown; [key: string]: unknown }, token?: string): {
  method: string;
  name?: string;
  arguments: Record<string, unknown>;
};

/**
 * Browsers and workers (the `browser`/`default` entry): loads the .wasm; await once before
 * `new MCPVault()`. On Node the package loads synchronously and `init` is not needed.
 */
export function init(input?: string | URL | Response | BufferSource | WebAssembly.Module): Promise<void>;

// ---- The gate: where an HTTP/MCP server meets the vault (SCHEMA.md, "At an MCP server") ----

/** The reserved dry-run tool name, `mcpvault.check`. */
export const CHECK_TOOL: "mcpvault.check";
/** The methods whose answers the guard's filter narrows to what a token may see (the core's `guard::LIST_METHODS`):
 * `tools/list`, `resources/list`, `resources/templates/list`, `prompts/list`, `skills/list`, `skills/get`. (A
 * function: the web entry's module is there only after `init()`.) */
export function listMethods(): readonly string[];

/** A refusal code at the gate (the core's codes; `missing_token` is one of them). */
export type GateErrorCode = ErrorCode;

/** A Node/Express request (plain header object, optional parsed `body`) or a fetch `Request`. */
export type RequestLike = { headers: Record<string, string | string[] | undefined> | { get(name: string): string | null }; body?: unknown };

/** One call: a JSON-RPC message, or `{ method?, tool, arguments? }`. */
export type CallLike = Record<string, unknown>;

/** The function API takes the server's policy too (`mappings`, `toolMappings`, `rules`). */
export interface GateOptions extends PolicyOptions {
  /** The issuer's public key, hex. */
  publicKey: string;
  audience?: string;
  /** Unix seconds (default: the vault's clock). */
  now?: number;
  /** Default: a shared vault caching 1,024 chains. */
  vault?: MCPVault;
}

/** The token: `X-MCPVault-Token`, then `Authorization: Bearer`, then `params._meta.token` / `_meta["mcpvault/token"]`. */
export function extractToken(request: RequestLike, body?: unknown): string | null;
export function findToken(request: RequestLike, body?: unknown): { token: string; source: string } | null;
/** The facts, or the refusal (returned, never thrown). */
export function authorizeCall(token: string | null | undefined, call: CallLike, options: GateOptions): AuthorizedFacts | McpVaultError;
export function statusOf(code: string): 400 | 401 | 403 | 409 | 500;

export interface Challenge {
  status: 400 | 401 | 403 | 409 | 500;
  headers: Record<string, string>;
  body: { jsonrpc: "2.0"; id: string | number | null; error: { code: number; message: string; data: { code: GateErrorCode; status: number; failedBlock?: number } } };
}
export interface ChallengeOptions { id?: string | number | null; realm?: string; resourceMetadata?: string; tool?: string }
/** The HTTP answer to a refusal (401/403 with WWW-Authenticate, 400, 500) with a JSON-RPC error body. */
export function challenge(error: unknown, options?: ChallengeOptions): Challenge;
export function challengeResponse(error: unknown, options?: ChallengeOptions): Response;

/** The gate for fetch-style servers: reads a clone's JSON body, authorizes every message. `response`: the guard
 * answered the whole request (send it); `answers`: the guard answered some messages of a batch (the dry-run tool, a
 * retry's recorded response) and `body` holds the rest — put them in the batch reply. */
export function authorizeFetch(request: Request, options: StateOptions & ChallengeOptions & { tool?: string; maxBodyBytes?: number }):
  Promise<{ ok: true; facts: AuthorizedFacts; token: string; body: unknown; outcome: GuardOutcome; response?: Response; answers?: unknown[] } |
    { ok: false; error: McpVaultError; response: Response; outcome: GuardOutcome }>;

/** Throws McpVaultError `invalid_key` unless `hex` is an Ed25519 public key. */
export function assertPublicKey(hex: string): void;

// ---- The guard: every server decision, in the core (SCHEMA.md, "The guard") ----

/** One decision of the guard, in the core's JSON (snake_case). */
export interface GuardDecision {
  allowed: boolean;
  code: ErrorCode | null;
  status: number;
  message: string | null;
  detail: string | null;
  failed_block: number | null;
  failed_check: string | null;
  method: string | null;
  tool: string | null;
  request_id: string | null;
  token_source: string | null;
  subject: string | null;
  issuer: string | null;
  revocation_ids: string[];
  replayed_response: boolean;
  /** The token's delegation depth, when it verified. */
  depth?: number;
  /** Present (true) when the token's chain came from the verifier's cache. */
  cache_hit?: true;
  /** The prompt of a `prompts/get`. */
  prompt?: string;
  /** The resource URI of a `resources/*` request. */
  resource_uri?: string;
  /** The request's `Mcp-Session-Id` header. */
  session_id?: string;
  /** The W3C trace context of the message's `params._meta`. */
  traceparent?: string;
  tracestate?: string;
}
/** What to do with a request: answer `response` with `status` and `headers` when refused, else hand `forward` on
 * (without the token) and send `answers` (the guard's own answers); `call_key`: record the handler's response. */
export interface GuardOutcome {
  allowed: boolean;
  status: number;
  headers: Record<string, string>;
  response: unknown;
  forward: unknown;
  answers: Array<{ jsonrpc: "2.0"; id: string | number | null; result?: unknown; error?: unknown }>;
  token: string | null;
  token_source: string | null;
  facts: Record<string, unknown> | null;
  decisions: GuardDecision[];
  audit: AuditRecord[];
  call_key: string | null;
  keep_until: number | null;
  /** With `sessionBook`: an allowed initialize went on; keep the session id the server's answer gives (its
   * `Mcp-Session-Id`) for this subject once that answer succeeds (status below 300). */
  opens_session?: string;
  /** With `sessionBook`: an allowed DELETE ends this session; forget it once the answer succeeds. */
  ends_session?: string;
}
/** What arrived, as Guard.decide takes it. */
export interface GuardRequest {
  httpMethod?: string;
  headers?: RequestLike["headers"];
  /** JSON text, or a parsed body. */
  body?: unknown;
  bodyError?: "too_large" | "not_utf8" | "not_json";
  /** A token an outer mcpvault layer already took from this request. */
  transportToken?: string;
  /** A token to use when the request presents none. */
  fallbackToken?: string;
  /** An outer layer already spent this request's single-use nonces. */
  replayChecked?: boolean;
  /** The subject that opened this MCP session. */
  sessionSubject?: string;
  /** The host keeps the MCP sessions it saw opened (SCHEMA.md, "Sessions"): a request naming a session without
   * `sessionSubject` is refused 404 (`invalid_request`), and the outcome's `opens_session`/`ends_session` say what to
   * keep and forget. */
  sessionBook?: boolean;
  /** The hashes of the server's current tool definitions by name (`toolHashes` of its tools/list), for pinned tools;
   * or a function that reads them, called only when the guard says a pinned call of a valid token needs them. */
  toolDefinitions?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);
  /** Unix seconds (default: the guard's clock). */
  now?: number;
  /** This call's store (default: the guard's). */
  store?: Store;
}
/** A decision as `onDecision` hears it (mcpvault-express, withMcpVault, the proxy). */
export interface Decision {
  allowed: boolean;
  /** The refusal code (`missing_token`, `tool_not_allowed`, …); null when allowed. */
  code: ErrorCode | null;
  /** The HTTP status: 200 when allowed, else 400/401/403/409/500. */
  status: number;
  /** The JSON-RPC method decided on (`tools/call`, `initialize`, …, or `http/GET` for a body-less request). */
  method: string | null;
  tool: string | null;
  /** The JSON-RPC id of the message, as text, if any. */
  requestId: string | null;
  /** Where the token was found: "header", "bearer", "transport", "_meta.token", "_meta.mcpvault/token",
   * "fallback"; null when none. */
  tokenSource: string | null;
  subject: string | null;
  issuer: string | null;
  facts?: AuthorizedFacts;
  /** Refusals: the message sent to the caller, and the detail for server-side logs only. */
  message?: string | null;
  detail?: string | null;
  /** A retry answered with the recorded response of its first execution. */
  replayedResponse?: boolean;
  /** The scope the server's policy mapped a tools/call to. */
  scope?: string;
  /** The soft rules that fired on an allowed call. */
  softRules?: string[];
  /** The approvers whose signed approvals counted for an allowed call. */
  approvers?: string[];
  /** What an `approval_required` refusal asks for. */
  approval?: { requestHash: string; approvers: string[]; needed: number };
  /** The token's delegation depth, when it verified. */
  depth?: number;
  /** The token's chain came from the verifier's cache. */
  cacheHit: boolean;
  /** The prompt of a `prompts/get`, the resource URI of a resource request, the request's MCP session. */
  prompt?: string;
  resourceUri?: string;
  sessionId?: string;
}
/** A matcher on one argument (APOA's format); every condition given must hold. */
export interface Matcher {
  startsWith?: string;
  equals?: string | number | boolean | null;
  in?: Array<string | number | boolean | null>;
  lt?: number;
  lte?: number;
  gt?: number;
  gte?: number;
  glob?: string;
  /** A path this directory holds (`.` segments and repeated slashes resolved); a path with a `..` segment (the kernel
   * resolves it through symbolic links) or one that does not resolve is of another type: a hard rule refuses it. Use
   * it for paths: `startsWith` compares the text as written. */
  under?: string;
  /** @apoa/mcp's names: `oneOf` is `in`; `endsWith`, `contains`, `matches` (a regular expression). */
  oneOf?: Array<string | number | boolean | null>;
  endsWith?: string;
  contains?: string;
  matches?: string;
}
/** Argument paths (`path`, `config.mode`, `/a.b`) to matchers. */
export type When = Record<string, Matcher>;
export interface ToolMapping {
  tool: string;
  service?: string;
  scope: string;
  when?: When;
  /** Higher wins; then declaration order. */
  priority?: number;
}
export interface PolicyRule {
  id: string;
  /** Every tool when absent. */
  tool?: string;
  when?: When;
  /** hard: refuse; soft: report; approval: allow only with `needed` signed approvals by `approvers`. */
  enforcement: "hard" | "soft" | "approval";
  message?: string;
  /** An approval rule's approvers (Ed25519 public keys, hex). */
  approvers?: string[];
  /** How many of them must approve (default 1). */
  needed?: number;
}
/** The server's policy (SCHEMA.md, "Server policy"). */
export interface PolicyOptions {
  /** `{ read_file: "filesystem:files:read" }`; an unmapped tool maps to `TOOL:call`. */
  mappings?: Record<string, string>;
  toolMappings?: ToolMapping[];
  rules?: PolicyRule[];
}
export interface GuardOptions extends PolicyOptions {
  /** The issuer's public key, hex. */
  publicKey: string;
  audience?: string;
  /** Revocation, single use (with recorded responses) and the audit log; none: single-use tokens are refused. */
  store?: Store;
  /** Seconds a retry of the same request is one (default 30). */
  retryWindow?: number;
  /** The route serves this one tool: a plain JSON body is its arguments. */
  tool?: string;
  /** Answer the dry-run tool `mcpvault.check`. */
  checkTool?: boolean;
  /** An inner layer spends single-use tokens (and records responses). */
  deferSpend?: boolean;
  /** This layer is an outer one (an inner mcpvault layer decides each message again): hand on the proofs and approvals
   * it counted and spent, and the dry-run tool when `checkTool` is off. Without it the dry-run tool is refused unless
   * answered here. */
  forwardProofs?: boolean;
  /** An inner layer that knows the server's tool definitions checks pinned tools (this one lets them through). */
  deferPins?: boolean;
  /** Most objects and arrays (default 10,000) and values (default 100,000) one body may hold: a body over them is
   * refused (`invalid_request`) before it is parsed. A server whose tools take bulk rows raises them. */
  maxBodyContainers?: number;
  maxBodyValues?: number;
  /** The host runs allowed calls itself and cannot answer with a recorded response: a retry of a call whose response
   * another server recorded is `replayed`, never allowed again (authorizeWithState and authorizeBody set it). */
  verifyOnly?: boolean;
  realm?: string;
  resourceMetadata?: string;
  /** Open resources (prompts) to valid tokens that grant none; a token naming some is still held to them. */
  openResources?: boolean;
  openPrompts?: boolean;
  /** Verified chains kept (default 1,024). */
  cache?: number;
  /** Clock in unix seconds. */
  now?: () => number;
}
export class Guard {
  constructor(options: GuardOptions);
  decide(request: GuardRequest): Promise<GuardOutcome>;
  /** `decide` without a promise when the request needs nothing asynchronous (no store, no tool definitions to read):
   * the outcome, else a promise of it. Its `decisions` are read with `decisionsOf` or `errorOf` (held unread until
   * then). Throws (rather than rejects) for a bad `now`. */
  decideNow(request: GuardRequest): Omit<GuardOutcome, "decisions"> | Promise<Omit<GuardOutcome, "decisions">>;
  /** Records the response of an allowed single-use call, for its retries. */
  complete(outcome: GuardOutcome, response: { result: unknown } | { error: unknown }, store?: Store): Promise<void>;
  errorOf(outcome: Omit<GuardOutcome, "decisions">): McpVaultError | null;
  factsOf(outcome: Omit<GuardOutcome, "decisions">): AuthorizedFacts | null;
  decisionsOf(outcome: Omit<GuardOutcome, "decisions">): Decision[];
  filterTools<T extends object>(result: T, outcome: GuardOutcome, firstPage?: boolean): T & { tools: unknown[] };
  /** A `resources/list`, `resources/templates/list`, `prompts/list`, `skills/list` or `skills/get` result with only
   * what `outcome` grants (the guard's `openResources`/`openPrompts` apply); another method's result as it is. */
  filterList<T>(method: string, result: T, outcome: GuardOutcome): T;
  cacheStats(): { hits: number; misses: number; entries: number; capacity: number };
}
/** What the guard asks a store to do atomically. */
export interface StoreAsk {
  revocation_ids: string[];
  /** `probe`: only read (a dry run's call); `proofs`: how many of `nonces`, at their end, are proofs', spent (by the
   * call key "refused") even when a quota refuses the call — storeDecide writes them. */
  spend?: { nonces: string[]; call_key: string; now: number; until: number; window: number; probe?: boolean; proofs?: number };
  /** Quota counters to add to (SCHEMA.md, "Quotas"); a `probe` charge is only read. */
  quotas?: Array<{ key: string; kind: "rate" | "budget"; max: number; amount: number; until: number; ttl: number; probe?: boolean }>;
}
export type SpendOutcome =
  | { result: "fresh" } | { result: "in_flight" } | { result: "done"; response: unknown } | { result: "replayed"; nonce: string };
export interface StoreAnswer {
  revoked?: string;
  spend?: SpendOutcome;
  quota?: { key: string; kind: "rate" | "budget"; max: number; used: number; amount: number; until: number };
  error?: string;
}
/** A store's decision inside its transaction, from what it read; it writes `write`. */
export function storeDecide(
  ask: StoreAsk,
  read: { revoked: string[]; held: Array<{ call_key: string; at: number } | null>; recorded: unknown; used?: number[] },
): {
  answer: StoreAnswer;
  write: Array<{ nonce: string; call_key: string; at: number; until: number }>;
  counts: Array<{ key: string; used: number; until: number; ttl: number }>;
};
/** Redis stores: spend.lua's KEYS and ARGV for `ask` (SCHEMA.md, "Redis"). */
export function redisCall(ask: StoreAsk): { keys: string[]; args: string[] };
/** Redis stores: the answer to `ask` from spend.lua's reply; a reply the script never gives is an answer with
 * `error` (the guard refuses the request). */
export function redisAnswer(ask: StoreAsk, reply: Array<string | number>): StoreAnswer;
/** A full revocation id (128 hex), lowercased; throws `invalid_request` otherwise. */
export function revocationId(id: string): string;

// ---- What a verifier remembers: revocation, replay, audit (SCHEMA.md) ----

export interface AuditRecord {
  time: number;
  allowed: boolean;
  code: string | null;
  method: string;
  tool: string | null;
  subject: string | null;
  issuer: string | null;
  revocation_ids: string[];
  request_id: string | null;
  /** The approvers of an approved call (absent when none). */
  approvers?: string[];
  /** The retry of a call that already ran, answered with its recorded response (absent when not). */
  replayed_response?: boolean;
}
export interface AuditEntry extends AuditRecord {
  seq: number;
  /** The previous entry's hash (64 zeros for the first). */
  prev: string;
  /** SHA-256(prev ‖ canonical JSON of the entry without `hash`), hex. */
  hash: string;
}
export interface AuditBreak { index: number; seq: number | null; kind: "edited" | "deleted" | "reordered" | "broken"; detail: string }
/** The entry after `prev` (null for the first): the core computes the hash, so every host writes the same chain. */
export function auditAppend(prev: AuditEntry | null, record: AuditRecord): AuditEntry;
/** `{ entries, head }`, or `{ break }` at the first edited, deleted or reordered entry. */
export function auditVerify(entries: unknown[]): { entries: number; head: string; break?: undefined } | { break: AuditBreak };
/** The key that tells a retry of a JSON-RPC request from a replay. */
export function callKey(requestId: string | number | null, method: string, tool: string | null | undefined, args: Record<string, unknown>): string;

/** The store interface of mcpvault-store (memory, SQLite, Redis); any object with these methods works. */
export interface Store {
  /** The guard's atomic step. */
  check(ask: StoreAsk): Promise<StoreAnswer>;
  /** Records the response of a single-use call under its call key until `until` (unix seconds); `keepFor` is the same
   * as seconds from now (Redis keys expire by it). */
  complete(callKey: string, response: unknown, until: number, keepFor?: number): Promise<void>;
  appendAudit(record: AuditRecord): Promise<AuditEntry>;
}
export interface StateOptions extends GateOptions {
  store?: Store;
  /** Seconds a retry of the same request is one (default 30). */
  retryWindow?: number;
  /** The JSON-RPC id (default: the message's). */
  requestId?: string | number | null;
  /** An outer layer already spent this call's nonces. */
  replayChecked?: boolean;
}
/** What is wrong with the store options (store, retryWindow), or null. */
export function storeOptionsError(options: Record<string, unknown>): string | null;
/** authorizeCall, then revocation, replay (a tools/call spends single-use tokens) and the audit log. */
export function authorizeWithState(token: string | null | undefined, call: CallLike, options: StateOptions): Promise<AuthorizedFacts | McpVaultError>;
/** Every message of an HTTP body, through authorizeWithState; `tool` serves one tool; `httpMethod` names a body-less request. */
export function authorizeBody(token: string | null | undefined, body: unknown, options: StateOptions & { tool?: string; httpMethod?: string }):
  Promise<{ facts: AuthorizedFacts; outcome: GuardOutcome; id: string | number | null; error?: undefined } |
    { error: McpVaultError; outcome: GuardOutcome; id: string | number | null; facts?: undefined }>;

// ---- Telemetry (SCHEMA.md, "Telemetry") ----

/**
 * Reports every guard decision through `api`, the `@opentelemetry/api` module (an optional peer dependency): a span
 * per decision and the metrics `mcpvault.decisions`, `mcpvault.authorization.duration`, `mcpvault.cache.hits`,
 * `mcpvault.cache.misses`. On Node the package finds `@opentelemetry/api` by itself when it is installed; browsers and
 * workers pass it here. `null` turns spans and metrics off. Without an SDK registered, the API records nothing.
 */
export function useOpenTelemetry(api: unknown): void;

/** The Prometheus text exposition (0.0.4) of every guard's decisions in this process since the first call. */
export function metricsText(): string;
