export { withMcpVault } from "./with-mcpvault.mjs";
export { startProxy, loadConfig, checkConfig, ConfigError } from "./proxy.mjs";
export { CHECK_TOOL, REDACTED } from "./policy.mjs";
