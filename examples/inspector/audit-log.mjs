// A sample audit log for the audit tab's tests: 60 decisions over three hours, by two subjects on three tools, chained
// by the core (`auditAppend`), as JSON lines. `tamper(lines, seq)` edits one entry's decision without re-hashing it.
export function sampleLog(auditAppend, start = 1_800_000_000) {
  const codes = ["tool_not_allowed", "argument_not_allowed", "expired", "revoked"];
  const entries = [];
  for (let i = 0; i < 60; i++) {
    const allowed = i % 3 !== 0;
    const record = {
      time: start + i * 180, allowed, code: allowed ? null : codes[(i / 3) % codes.length],
      method: "tools/call", tool: ["db_query", "file_read", "admin_delete"][i % 3], subject: i % 2 ? "agent-b" : "agent-a",
      issuer: "auth-server", revocation_ids: allowed ? ["ab".repeat(64)] : [], request_id: String(i + 1),
    };
    entries.push(auditAppend(entries.at(-1) ?? null, record));
  }
  return entries.map((e) => JSON.stringify(e));
}

export function tamper(lines, seq) {
  return lines.map((l) => {
    const e = JSON.parse(l);
    if (e.seq !== seq) return l;
    e.allowed = !e.allowed;
    e.code = e.allowed ? null : "tool_not_allowed";
    return JSON.stringify(e);
  });
}
