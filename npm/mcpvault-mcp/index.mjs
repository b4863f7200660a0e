export { withMcpVault } from "./with-mcpvault.mjs";
export { withMcpVaultClient, mcpVaultFetch, proofTarget, TOKEN_META_KEY, PROOF_META_KEY, PROOF_HEADER } from "./client.mjs";
export { startProxy, loadConfig, checkConfig, ConfigError } from "./proxy.mjs";
export { CHECK_TOOL, REDACTED } from "./policy.mjs";
