// Appends audit entries to STORE as fast as it can, printing "ack SEQ" once each append has resolved, until killed.
//   node audit-writer.mjs STORE
import { openStore } from "mcpvault-store";

const store = await openStore(process.argv[2]);
for (let i = 0; ; i++) {
  const e = await store.appendAudit({
    time: 1_800_000_000 + i, allowed: i % 3 !== 0, code: i % 3 === 0 ? "tool_not_allowed" : null, method: "tools/call",
    tool: "db_query", subject: "agent-a", issuer: "auth-server", revocation_ids: [], request_id: String(i),
  });
  process.stdout.write(`ack ${e.seq}\n`);
}
