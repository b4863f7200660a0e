import m from "./index.cjs";
export const { createMcpVaultMiddleware } = m;
