// The audit tab's model (audit.mjs) on a log the core chained, and the core's verdict on it, in Node.
import test from "node:test";
import assert from "node:assert";
import { auditAppend, auditVerify } from "mcpvault";
import { parseLog, row, distinct, filterRows, bucketize, verdict, outcomeOf } from "./audit.mjs";
import { sampleLog, tamper } from "./audit-log.mjs";

test("a sound log: every entry read, the chain intact, buckets count every decision", () => {
  const text = sampleLog(auditAppend).join("\n") + "\n";
  const entries = parseLog(text);
  assert.strictEqual(entries.length, 60);
  const v = verdict(auditVerify(entries), entries.length);
  assert.strictEqual(v.ok, true);
  assert.match(v.text, /Chain intact: 60 entries/);
  const rows = entries.map(row);
  assert.deepStrictEqual(distinct(rows, "subject"), ["agent-a", "agent-b"]);
  const b = bucketize(rows, 24);
  const total = b.buckets.reduce((n, x) => n + Object.values(x.counts).reduce((s, c) => s + c, 0), 0);
  assert.strictEqual(total, 60);
  assert.strictEqual(b.codes[0], "allowed");
  assert.deepStrictEqual(b.codes.slice(1), ["argument_not_allowed", "expired", "revoked", "tool_not_allowed"]);
  assert.strictEqual(filterRows(rows, { code: "allowed" }).length, 40);
  assert.strictEqual(filterRows(rows, { subject: "agent-a", tool: "admin_delete" }).length, 10);
  assert.ok(filterRows(rows, { code: "expired" }).every((r) => outcomeOf(r) === "expired"));
  // a filtered view keeps the whole log's axis
  const range = { lo: b.start, hi: b.start + b.width * b.buckets.length - 1 };
  const f = bucketize(filterRows(rows, { code: "revoked" }), b.buckets.length, range);
  assert.deepStrictEqual([f.start, f.width, f.buckets.length], [b.start, b.width, b.buckets.length]);
  assert.strictEqual(f.buckets.reduce((n, x) => n + (x.counts.revoked ?? 0), 0), 5);
});

test("one tampered entry: the core names it, and lines that are not JSON are entries the core calls edited", () => {
  const lines = tamper(sampleLog(auditAppend), 17);
  const v = verdict(auditVerify(parseLog(lines.join("\n"))), 60);
  assert.strictEqual(v.ok, false);
  assert.strictEqual(v.index, 16);
  assert.match(v.text, /entry 17 \(seq 17\): edited/);
  const garbage = parseLog(`${lines[0]}\nnot json\n`);
  assert.strictEqual(garbage[1], "not json");
  assert.strictEqual(row(garbage[1], 1).readable, false);
  assert.strictEqual(auditVerify(garbage).break.index, 1);
  assert.deepStrictEqual(parseLog(JSON.stringify([{ a: 1 }])), [{ a: 1 }]);
  assert.deepStrictEqual(parseLog("  \n"), []);
});
