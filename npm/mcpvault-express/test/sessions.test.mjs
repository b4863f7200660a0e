// The session book's keeping (what the core says to keep and forget is tested through HTTP in mcpvault-mcp's
// hostile tests): one subject's flood of initializes pushes out only its own sessions.
import test from "node:test";
import assert from "node:assert";
import { createRequire } from "node:module";

const { _SessionBook: SessionBook } = createRequire(import.meta.url)("../index.cjs");

test("a subject's flood of sessions pushes out only its own; a full book forgets the oldest of all", () => {
  const book = new SessionBook(100, 10);
  book.bind("victim", "agent-a");
  for (let i = 1; i < 90; i++) book.bind(`s-${i}`, `subject-${i % 20}`);
  for (let i = 0; i < 60; i++) book.bind(`flood-${i}`, "agent-z");
  assert.strictEqual(book.get("victim"), "agent-a");
  assert.strictEqual(book.get("s-1"), "subject-1");
  assert.strictEqual(book.has("flood-49"), false);
  assert.strictEqual(book.get("flood-50"), "agent-z");
  assert.strictEqual(book.subjects.size, 100);
  book.bind("late", "agent-b");
  assert.strictEqual(book.has("victim"), false);
  assert.strictEqual(book.get("late"), "agent-b");
  book.forget("late");
  book.forget("never-bound");
  assert.strictEqual([...book.bySubject.values()].reduce((a, own) => a + own.size, 0), book.subjects.size);
  // nothing binds without an id and a subject
  for (const [sid, subject] of [["", "s"], [undefined, "s"], ["x", undefined], [7, "s"]]) book.bind(sid, subject);
  assert.strictEqual(book.subjects.size, 99);
});
