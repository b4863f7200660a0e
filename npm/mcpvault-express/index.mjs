import m from "./index.cjs";
export const { createMcpVaultMiddleware, metricsHandler } = m;
