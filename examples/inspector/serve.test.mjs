// The inspector's dev server: a malformed request is answered, not the end of the process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "./serve.mjs";

test("a malformed escape in the path is 400, and the server goes on serving", async () => {
  const { server, origin } = await startServer(0);
  try {
    for (const path of ["/%", "/%E0%A4%A", "/examples/inspector/%ZZ"]) {
      const r = await fetch(origin + path);
      assert.equal(r.status, 400, path);
    }
    assert.equal((await fetch(`${origin}/examples/inspector/index.html`)).status, 200);
    assert.equal((await fetch(`${origin}/Makefile`)).status, 404);
  } finally {
    server.close();
  }
});
