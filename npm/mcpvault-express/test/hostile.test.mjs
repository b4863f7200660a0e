// An outside tester's attack on the Express middleware, over real HTTP on 127.0.0.1: headers that disagree with the
// body, two tokens, odd ids, notifications, batches, mangled tokens on every method, unreadable bodies, a single-use
// token raced against two servers sharing one SQLite store, a holder-bound token stolen from a log. Every refusal must
// be a typed JSON-RPC error with the right HTTP status, never a 500, never an allow, never the token echoed.
import test from "node:test";
import assert from "node:assert";
import http from "node:http";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import express4 from "express4";
import express5 from "express5";
import { MCPVault } from "mcpvault";
import { createMcpVaultMiddleware } from "mcpvault-express";
import { openStore } from "mcpvault-store";

const vault = new MCPVault();
const keys = vault.generateKeypair();
const mint = (extra = {}) => vault.mint(keys.privateKey, {
  tools: ["db_query"], ttl: 600, issuer: "auth-server", subject: "agent-a",
  argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 100 }], ...extra,
});
const token = mint();
// another valid token of the same issuer, granting more
const other = vault.mint(keys.privateKey, { tools: ["db_query", "admin_delete"], ttl: 600, issuer: "auth-server", subject: "agent-z" });
const J = JSON.stringify;
const call = (name, args = {}, id = 1, meta) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args, ...(meta && { _meta: meta }) } });
const ok = () => call("db_query", { max_rows: 1 });
const CT = { "Content-Type": "application/json" };
const X = (t) => ({ "X-MCPVault-Token": t });

/** JSON-RPC error.code of each HTTP status (SCHEMA.md, "The guard", the table of answers). */
const RPC = { 400: -32600, 401: -32011, 403: -32013, 409: -32009, 429: -32029 };

/**
 * Starts an app on 127.0.0.1:0. `parser`: "json" (express.json before the middleware) or "none" (the middleware
 * reads the body). `ran` counts the handler's executions.
 */
async function serve({ express = express5, parser = "none", options = {}, delay = 0 } = {}) {
  const app = express();
  if (parser === "json") app.use(express.json({ limit: "20mb" }));
  const auth = createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, ...options });
  const state = { ran: 0, bodies: [] };
  app.all("/mcp", auth(), async (req, res) => {
    state.ran++;
    state.bodies.push(req.body);
    if (delay) await new Promise((r) => setTimeout(r, delay));
    res.json({ ok: true });
  });
  // an error of the app's own parser would land here; the middleware's refusals never do
  app.use((err, req, res, next) => res.status(599).json({ appError: String(err?.type ?? err) }));
  const server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  state.port = server.address().port;
  state.close = () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); });
  return state;
}

/** One raw HTTP request. `headers`: an object whose array values are sent as repeated header lines. */
function send(port, method, headers = {}, body) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: "127.0.0.1", port, path: "/mcp", method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    r.on("error", reject);
    if (body !== undefined) r.write(typeof body === "string" || Buffer.isBuffer(body) ? body : J(body));
    r.end();
  });
}

/** Asserts a refusal: status, JSON-RPC error(s) with data.code and data.status, the right error.code, no token. */
function refused(r, status, code, what, secrets = [token, other]) {
  assert.strictEqual(r.status, status, `${what}: status (${r.text.slice(0, 300)})`);
  assert.ok(r.json !== undefined, `${what}: the answer is JSON (${r.text.slice(0, 200)})`);
  const errors = Array.isArray(r.json) ? r.json : [r.json];
  assert.ok(errors.length > 0, `${what}: at least one error`);
  for (const e of errors) {
    assert.strictEqual(e.jsonrpc, "2.0", what);
    assert.ok(e.error, `${what}: a JSON-RPC error`);
    assert.strictEqual(e.error.code, RPC[status], `${what}: error.code`);
    assert.strictEqual(e.error.data?.status, status, `${what}: data.status`);
    if (code instanceof RegExp) assert.match(e.error.data?.code, code, what);
    else assert.strictEqual(e.error.data?.code, code, what);
    assert.match(e.error.data.code, /^[a-z]+(_[a-z]+)*$/, `${what}: a snake_case code`);
  }
  const www = r.headers["www-authenticate"] ?? "";
  // eslint-disable-next-line no-control-regex
  assert.ok(/^[\x20-\x7e]*$/.test(www), `${what}: WWW-Authenticate is printable ASCII: ${J(www)}`);
  for (const s of secrets) {
    if (typeof s !== "string" || s.length < 24) continue;
    // any 24-character window of the token would be an echo
    for (let i = 0; i + 24 <= s.length; i += 24) {
      const piece = s.slice(i, i + 24);
      assert.ok(!r.text.includes(piece) && !www.includes(piece), `${what}: the answer echoes the token`);
    }
  }
}

const allowed = (r, what) => assert.strictEqual(r.status, 200, `${what}: ${r.text.slice(0, 300)}`);

const SETUPS = [
  ["Express 5, the middleware reads the body", { express: express5, parser: "none" }],
  ["Express 5 after express.json()", { express: express5, parser: "json" }],
  ["Express 4 after express.json()", { express: express4, parser: "json" }],
];

for (const [name, setup] of SETUPS) {
  test(`${name}: Mcp-Method / Mcp-Name headers that disagree with the body are invalid_request`, async (t) => {
    const s = await serve(setup);
    t.after(s.close);
    const cases = [
      ["Mcp-Method names another method", { "Mcp-Method": "tools/list" }, ok()],
      ["Mcp-Name names another tool", { "Mcp-Method": "tools/call", "Mcp-Name": "admin_delete" }, ok()],
      ["Mcp-Method differs in case", { "Mcp-Method": "TOOLS/CALL" }, ok()],
      ["Mcp-Name empty", { "Mcp-Name": "" }, ok()],
      ["Mcp-Method twice (the second disagrees)", { "Mcp-Method": ["tools/call", "tools/list"] }, ok()],
      ["Mcp-Name twice (the second names a tool not granted)", { "Mcp-Name": ["db_query", "admin_delete"] }, ok()],
      ["Mcp-Name for a prompt names another prompt", { "Mcp-Name": "a" }, { jsonrpc: "2.0", id: 1, method: "prompts/get", params: { name: "b" } }],
      ["Mcp-Name for a resource names another URI", { "Mcp-Name": "file:///a" }, { jsonrpc: "2.0", id: 1, method: "resources/read", params: { uri: "file:///b" } }],
      ["Mcp-Method on a client response", { "Mcp-Method": "tools/call" }, { jsonrpc: "2.0", id: 1, result: {} }],
      ["a batch whose second message disagrees", { "Mcp-Method": "tools/call", "Mcp-Name": "db_query" }, [ok(), call("admin_delete", {}, 2)]],
    ];
    for (const [what, h, body] of cases) {
      const r = await send(s.port, "POST", { ...CT, ...X(token), ...h }, body);
      refused(r, 400, "invalid_request", what);
    }
    // agreeing headers (whitespace around them is trimmed) pass
    allowed(await send(s.port, "POST", { ...CT, ...X(token), "Mcp-Method": " tools/call ", "Mcp-Name": "db_query" }, ok()), "agreeing headers");
    assert.strictEqual(s.ran, 1);
  });

  test(`${name}: two different tokens in one request are invalid_request; duplicated token headers never allow`, async (t) => {
    const s = await serve(setup);
    t.after(s.close);
    // the header's token and the body's
    refused(await send(s.port, "POST", { ...CT, ...X(token) }, call("db_query", { max_rows: 1 }, 1, { token: other })), 400, "invalid_request", "header vs _meta.token");
    refused(await send(s.port, "POST", { ...CT, Authorization: `Bearer ${token}` }, call("db_query", { max_rows: 1 }, 1, { "mcpvault/token": other })),
      400, "invalid_request", "Bearer vs _meta[mcpvault/token]");
    // two messages of a batch
    refused(await send(s.port, "POST", CT, [call("db_query", { max_rows: 1 }, 1, { token }), call("db_query", { max_rows: 1 }, 2, { token: other })]),
      400, "invalid_request", "two messages, two _meta tokens");
    // the header first: X-MCPVault-Token wins and a garbage one is never replaced by the valid Bearer
    refused(await send(s.port, "POST", { ...CT, ...X("garbage"), Authorization: `Bearer ${token}` }, ok()), 401, "malformed_token", "garbage X-MCPVault-Token, valid Bearer");
    // Node keeps the first Authorization line and drops the others; the middleware hands the guard all of them:
    // two Bearer tokens, never decided by whichever came first
    refused(await send(s.port, "POST", { ...CT, Authorization: ["Bearer garbage", `Bearer ${token}`] }, ok()), 400, "invalid_request", "two Authorization lines, garbage first");
    refused(await send(s.port, "POST", { ...CT, Authorization: [`Bearer ${token}`, `Bearer ${other}`] }, call("admin_delete")), 400, "invalid_request",
      "two Authorization lines, the narrow token first");
    // two X-MCPVault-Token lines (Node joins them with ", "): never a token, never an allow
    for (const pair of [[token, other], [other, token], ["garbage", token], [token, token]]) {
      const r = await send(s.port, "POST", { ...CT, "X-MCPVault-Token": pair }, ok());
      // SCHEMA.md: two X-MCPVault-Token headers are two tokens
      refused(r, 400, "invalid_request", "two X-MCPVault-Token lines");
    }
    assert.strictEqual(s.ran, 0, "nothing ran");
  });

  test(`${name}: one message's _meta carrying two different tokens (token and mcpvault/token) is invalid_request`, async (t) => {
    // SCHEMA.md: "One request carries one token: a _meta token that differs from the header's, or from another
    // message's in the same batch, is invalid_request."
    const s = await serve(setup);
    t.after(s.close);
    const both = (a, b) => call("db_query", { max_rows: 1 }, 1, { token: a, "mcpvault/token": b });
    refused(await send(s.port, "POST", { ...CT, ...X(token) }, both(token, other)), 400, "invalid_request",
      "header = _meta.token, _meta[mcpvault/token] another token");
    refused(await send(s.port, "POST", CT, both(token, other)), 400, "invalid_request", "no header, _meta.token and _meta[mcpvault/token] differ");
    refused(await send(s.port, "POST", CT, both(other, token)), 400, "invalid_request", "the same, the other way round");
    assert.strictEqual(s.ran, 0, "a request carrying two tokens ran");
  });

  test(`${name}: Mcp-Method / Mcp-Name on a body-less request must agree with it too (it is decided as http/METHOD)`, async (t) => {
    // SCHEMA.md: "when Mcp-Method or Mcp-Name is present it must equal every message's method"; a body-less request is
    // the message http/GET (http/DELETE, http/POST): a header claiming tools/call of admin_delete disagrees.
    const s = await serve(setup);
    t.after(s.close);
    const h = { ...X(token), "Mcp-Method": "tools/call", "Mcp-Name": "admin_delete" };
    refused(await send(s.port, "GET", h), 400, "invalid_request", "GET with Mcp-Method tools/call");
    refused(await send(s.port, "DELETE", h), 400, "invalid_request", "DELETE with Mcp-Method tools/call");
    refused(await send(s.port, "POST", { ...h, "Content-Length": "0" }), 400, "invalid_request", "empty POST with Mcp-Method tools/call");
    assert.strictEqual(s.ran, 0, "a request whose headers claim a call the token does not grant reached the handler");
  });

  test(`${name}: notifications, and ids of odd types`, async (t) => {
    const s = await serve(setup);
    t.after(s.close);
    // a tools/call without an id is never run
    const note = { jsonrpc: "2.0", method: "tools/call", params: { name: "db_query", arguments: { max_rows: 1 } } };
    refused(await send(s.port, "POST", { ...CT, ...X(token) }, note), 400, "invalid_request", "tools/call notification");
    const batch = await send(s.port, "POST", { ...CT, ...X(token) }, [note, note]);
    refused(batch, 400, "invalid_request", "a batch of tools/call notifications");
    assert.deepStrictEqual(batch.json.map((e) => e.id), [null], "one error with id null for a batch of notifications only");
    // a notification method sent as a request still needs a valid token
    refused(await send(s.port, "POST", { ...CT, ...X("garbage") }, { jsonrpc: "2.0", id: 3, method: "notifications/initialized" }), 401, "malformed_token", "notification with an id");
    refused(await send(s.port, "POST", CT, { jsonrpc: "2.0", method: "notifications/initialized" }), 401, "missing_token", "notification without a token");
    // ids that are neither a string nor an integer (and integers beyond 64 bits)
    for (const id of ["null", "{}", "[]", "true", "1.5", "18446744073709551616", "-9223372036854775809", "99999999999999999999999"]) {
      const body = `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"db_query","arguments":{"max_rows":1}}}`;
      const r = await send(s.port, "POST", { ...CT, ...X(token) }, body);
      refused(r, 400, "invalid_request", `id ${id}`);
      assert.strictEqual(r.json.id, null, `id ${id}: answered with id null`);
    }
    // a valid but huge string id: decided, not echoed into the log unbounded (no crash, no 500)
    const long = "i".repeat(200_000);
    const r = await send(s.port, "POST", { ...CT, ...X("garbage") }, call("db_query", { max_rows: 1 }, long));
    refused(r, 401, "malformed_token", "a 200,000-character id");
    assert.strictEqual(r.json.id, long, "the answer names the request");
    assert.strictEqual(s.ran, 0);
  });

  test(`${name}: batches: empty, 5,000 messages, over 100, mixed, nested`, async (t) => {
    const s = await serve(setup);
    t.after(s.close);
    refused(await send(s.port, "POST", { ...CT, ...X(token) }, "[]"), 400, "invalid_request", "empty batch");
    const many = Array.from({ length: 5000 }, (_, i) => call("db_query", { max_rows: 1 }, i));
    const started = Date.now();
    refused(await send(s.port, "POST", { ...CT, ...X(token) }, many), 400, "invalid_request", "5,000 messages");
    assert.ok(Date.now() - started < 5000, "a huge batch is refused before anything is verified");
    refused(await send(s.port, "POST", { ...CT, ...X(token) }, many.slice(0, 101)), 400, "invalid_request", "101 messages");
    refused(await send(s.port, "POST", { ...CT, ...X("garbage") }, many), 400, "invalid_request", "5,000 messages, garbage token");
    const mixed = await send(s.port, "POST", { ...CT, ...X(token) }, [call("db_query", { max_rows: 1 }, 1), call("admin_delete", {}, 2)]);
    refused(mixed, 403, /^(tool_not_allowed)$/, "mixed allowed and refused");
    assert.deepStrictEqual(mixed.json.map((e) => e.id), [1, 2], "one error per request");
    const limit = await send(s.port, "POST", { ...CT, ...X(token) }, [call("db_query", { max_rows: 1 }, 1), call("db_query", { max_rows: 1000 }, 2)]);
    refused(limit, 403, "argument_not_allowed", "mixed: an argument over its limit");
    refused(await send(s.port, "POST", { ...CT, ...X(token) }, [[ok()]]), 400, "invalid_request", "nested batch");
    refused(await send(s.port, "POST", { ...CT, ...X(token) }, [[]]), 400, "invalid_request", "nested empty batch");
    refused(await send(s.port, "POST", { ...CT, ...X(token) }, [ok(), 5, "x", null]), 400, "invalid_request", "a batch with non-messages");
    assert.strictEqual(s.ran, 0, "no refused batch ran");
    allowed(await send(s.port, "POST", { ...CT, ...X(token) }, many.slice(0, 100)), "100 messages");
    assert.strictEqual(s.ran, 1);
  });

  test(`${name}: garbage, truncated and mangled tokens on every MCP method, GET and DELETE: 401, opaque`, async (t) => {
    const s = await serve(setup);
    t.after(s.close);
    const flip = (i) => token.slice(0, i) + (token[i] === "A" ? "B" : "A") + token.slice(i + 1);
    const mangled = {
      garbage: "garbage",
      "not base64": "!!!!$$$$%%%%",
      truncated: token.slice(0, -10),
      half: token.slice(0, token.length >> 1),
      "a flipped character early": flip(12),
      "a flipped character in the signature": flip(token.length - 20),
      "standard base64 alphabet": token.replace(/-/g, "+").replace(/_/g, "/"),
      "padding added": `${token}==`,
      "a space inside": `${token.slice(0, 30)} ${token.slice(30)}`,
      "twice": token + token,
      "a 12 KB token": "A".repeat(12_000),
    };
    const methods = [
      { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "c", version: "1" } } },
      { jsonrpc: "2.0", id: 2, method: "ping" },
      { jsonrpc: "2.0", id: 3, method: "tools/list" },
      call("db_query", { max_rows: 1 }, 4),
      { jsonrpc: "2.0", id: 5, method: "resources/read", params: { uri: "file:///etc/passwd" } },
      { jsonrpc: "2.0", id: 6, method: "prompts/get", params: { name: "p" } },
      { jsonrpc: "2.0", id: 7, method: "completion/complete", params: { ref: { type: "ref/prompt", name: "p" }, argument: { name: "a", value: "b" } } },
      { jsonrpc: "2.0", id: 8, method: "logging/setLevel", params: { level: "debug" } },
      { jsonrpc: "2.0", id: 9, method: "x/unknown", params: {} },
      { jsonrpc: "2.0", method: "notifications/initialized" },
    ];
    const opaque = /^(malformed_token|bad_signature|limits_exceeded)$/;
    for (const [kind, bad] of Object.entries(mangled)) {
      for (const m of methods) {
        // in the X-MCPVault-Token header, in _meta.token, and (when a bearer can carry it) as a Bearer
        const ways = [
          [X(bad), m],
          [{}, { ...m, params: { ...m.params, _meta: { token: bad } } }],
          ...(kind === "a space inside" ? [] : [[{ Authorization: `Bearer ${bad}` }, m]]),
        ];
        for (const [h, body] of ways) {
          const r = await send(s.port, "POST", { ...CT, ...h }, body);
          const what = `${kind} token, ${m.method}, ${Object.keys(h)[0] ?? "_meta"}`;
          refused(r, 401, opaque, what, [token, other, bad]);
          assert.match(r.json.error.message, /^token (signature is not valid|is malformed)|limits/, `${what}: opaque message`);
          assert.strictEqual(r.json.id, m.id ?? null, `${what}: the request's id`);
          assert.match(r.headers["www-authenticate"], /^Bearer realm="mcpvault", error="invalid_token"/, what);
        }
      }
      for (const verb of ["GET", "DELETE"]) {
        refused(await send(s.port, verb, X(bad)), 401, opaque, `${kind} token, ${verb}`, [token, other, bad]);
      }
    }
    // no token on GET/DELETE: the bare challenge
    for (const verb of ["GET", "DELETE"]) {
      const r = await send(s.port, verb, {});
      refused(r, 401, "missing_token", `${verb} without a token`);
      assert.strictEqual(r.headers["www-authenticate"], 'Bearer realm="mcpvault"');
    }
    // a token in _meta over the documented maximum (64 KiB)
    refused(await send(s.port, "POST", CT, { jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: { token: "A".repeat(70_000) } } }),
      401, "limits_exceeded", "a 70 KB _meta token");
    assert.strictEqual(s.ran, 0, "nothing ran");
  });

  test(`${name}: caller text never breaks the challenge header (CR/LF, NUL, quotes, non-ASCII)`, async (t) => {
    const s = await serve(setup);
    t.after(s.close);
    const nasty = "x\r\nSet-Cookie: a=b\u0000\"\\é\u2028";
    // a resource URI with control characters is refused before any grant (a server could resolve it elsewhere)
    refused(await send(s.port, "POST", { ...CT, ...X(token) }, { jsonrpc: "2.0", id: 1, method: "resources/read", params: { uri: `file:///${nasty}` } }),
      400, "invalid_request", "a resource URI with CR/LF");
    const r = await send(s.port, "POST", { ...CT, ...X(token) }, call(`adm${nasty}`));
    assert.ok(r.status === 400 || r.status === 403, `a tool name with CR/LF: ${r.status}`);
    refused(r, r.status, r.status === 400 ? "invalid_request" : "tool_not_allowed", "a tool name with CR/LF");
    assert.strictEqual(r.headers["set-cookie"], undefined);
    const p = await send(s.port, "POST", { ...CT, ...X(token) }, { jsonrpc: "2.0", id: 1, method: "prompts/get", params: { name: `p${nasty}` } });
    assert.ok(p.status === 400 || p.status === 403, `a prompt name with CR/LF: ${p.status}`);
    refused(p, p.status, p.status === 400 ? "invalid_request" : "prompt_not_allowed", "a prompt name with CR/LF");
    assert.strictEqual(s.ran, 0);
  });
}

test("bodies the middleware reads itself: not JSON, not UTF-8, BOM, huge, deep, text/plain, chunked, empty", async (t) => {
  const s = await serve({ parser: "none", options: { maxBodyBytes: 64 * 1024 } });
  t.after(s.close);
  const list = J({ jsonrpc: "2.0", id: 1, method: "tools/list" });
  const bad = [
    ["not JSON", CT, "{oops"],
    ["not JSON, text/plain", { "Content-Type": "text/plain" }, "{oops"],
    ["trailing garbage", CT, `${list}xyz`],
    ["two JSON values", CT, list + list],
    ["JSON null", CT, "null"],
    ["a number", CT, "5"],
    ["a string", CT, '"tools/list"'],
    ["not UTF-8", CT, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
    ["not UTF-8 inside a string", { "Content-Type": "text/plain" }, Buffer.concat([Buffer.from(list.slice(0, 20)), Buffer.from([0xc3, 0x28]), Buffer.from(list.slice(20))])],
    ["UTF-16 with its BOM", CT, Buffer.from(`\ufeff${list}`, "utf16le")],
    ["a lone surrogate escape in an argument", CT, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"db_query","arguments":{"max_rows":1,"s":"\\ud800"}}}'],
    ["nested 200 levels", CT, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"db_query","arguments":{"max_rows":1,"x":${"[".repeat(200)}${"]".repeat(200)}}}}`],
    ["nested 50,000 levels", CT, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":${"[".repeat(50_000)}${"]".repeat(50_000)}}}`],
    ["a float id written 1e3", CT, '{"jsonrpc":"2.0","id":1e3,"method":"tools/list"}'],
    ["a number out of range", CT, '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"db_query","arguments":{"max_rows":1e400}}}'],
  ];
  for (const [what, h, body] of bad) {
    refused(await send(s.port, "POST", { ...h, ...X(token) }, body), 400, "invalid_request", what);
    // and without a token: still invalid_request (what cannot be read is refused first), never a 500
    refused(await send(s.port, "POST", h, body), 400, "invalid_request", `${what}, no token`);
  }
  // too large: refused, and the connection is closed
  const huge = await send(s.port, "POST", { ...CT, ...X(token) }, J({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { pad: "x".repeat(1024 * 1024) } }));
  refused(huge, 400, "invalid_request", "a 1 MB body over maxBodyBytes");
  assert.strictEqual(huge.headers.connection, "close");
  assert.strictEqual(s.ran, 0, "no unreadable body ran");

  // readable ones are decided as JSON whatever their Content-Type or framing; each needs a valid token
  const readable = [
    ["a UTF-8 BOM", CT, `\ufeff${list}`],
    ["text/plain", { "Content-Type": "text/plain" }, list],
    ["no Content-Type", { "Content-Length": String(Buffer.byteLength(list)) }, list],
    ["chunked", { ...CT, "Transfer-Encoding": "chunked" }, list],
  ];
  for (const [what, h, body] of readable) {
    refused(await send(s.port, "POST", h, body), 401, "missing_token", `${what}, no token`);
    refused(await send(s.port, "POST", { ...h, ...X("garbage") }, body), 401, "malformed_token", `${what}, garbage token`);
    allowed(await send(s.port, "POST", { ...h, ...X(token) }, body), what);
  }
  // an empty body (Content-Length: 0) is a body-less request: it needs a valid token
  refused(await send(s.port, "POST", { ...CT, "Content-Length": "0" }), 401, "missing_token", "empty body, no token");
  refused(await send(s.port, "POST", { ...CT, "Content-Length": "0", ...X("garbage") }), 401, "malformed_token", "empty body, garbage token");
  assert.strictEqual(s.ran, readable.length);
});

test("a single-use token sent 50 times in parallel to two Express servers sharing one SQLite file: one execution", async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), "mcpvault-hostile-")), "vault.db");
  const stores = [await openStore(`sqlite:${file}`), await openStore(`sqlite:${file}`)];
  t.after(() => Promise.all(stores.map((x) => x.close())));
  const servers = await Promise.all(stores.map((store) => serve({ options: { store }, delay: 30 })));
  t.after(() => Promise.all(servers.map((x) => x.close())));
  const ran = () => servers[0].ran + servers[1].ran;

  // 50 different requests (ids 0..49): one runs, every other is replayed
  const once = mint({ singleUse: true });
  const rs = await Promise.all(Array.from({ length: 50 }, (_, i) =>
    send(servers[i % 2].port, "POST", { ...CT, ...X(once) }, call("db_query", { max_rows: 1 }, i))));
  assert.strictEqual(ran(), 1, "exactly one execution");
  assert.strictEqual(rs.filter((r) => r.status === 200).length, 1);
  for (const r of rs.filter((x) => x.status !== 200)) refused(r, 401, "replayed", "a second call of a single-use token", [once]);

  // the same request 50 times (a client retrying): one runs; the others are in flight (no response recorded here)
  const once2 = mint({ singleUse: true });
  const before = ran();
  const same = await Promise.all(Array.from({ length: 50 }, (_, i) =>
    send(servers[i % 2].port, "POST", { ...CT, ...X(once2) }, call("db_query", { max_rows: 1 }, 7))));
  assert.strictEqual(ran() - before, 1, "exactly one execution of the retried request");
  for (const r of same.filter((x) => x.status !== 200)) refused(r, 409, "in_flight", "a retry while the first runs", [once2]);

  // a batch may spend a single-use token once: two calls in one batch, same id or not, run nothing
  for (const ids of [[1, 2], [1, 1]]) {
    const r = await send(servers[0].port, "POST", { ...CT, ...X(mint({ singleUse: true })) }, ids.map((id) => call("db_query", { max_rows: 1 }, id)));
    assert.strictEqual(r.status, 401, `batch ${J(ids)}`);
    refused(r, 401, "replayed", `batch ${J(ids)}`);
  }
  assert.strictEqual(ran() - before, 1);

  // a server without a store cannot keep the promise: refused
  const bare = await serve({});
  t.after(bare.close);
  refused(await send(bare.port, "POST", { ...CT, ...X(mint({ singleUse: true })) }, ok()), 401, "replayed", "single-use without a store");
  assert.strictEqual(bare.ran, 0);
});

test("a holder-bound token stolen from a log: without its proof, or with a proof made for another call, refused", async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), "mcpvault-hostile-")), "vault.db");
  const stores = [await openStore(`sqlite:${file}`), await openStore(`sqlite:${file}`)];
  t.after(() => Promise.all(stores.map((x) => x.close())));
  const [a, b] = await Promise.all(stores.map((store) => serve({ options: { store } })));
  t.after(() => Promise.all([a.close(), b.close()]));
  const holder = vault.generateKeypair();
  const thief = vault.generateKeypair();
  const bound = vault.mint(keys.privateKey, { tools: ["db_query", "admin_delete"], ttl: 600, issuer: "auth-server", subject: "agent-a", holder: holder.publicKey });
  const secrets = [bound, token, other];
  const sign = (key, target) => vault.signCall(key, bound, target);
  const args = { max_rows: 1 };
  const T = X(bound);

  // no proof: every method, body-less requests included
  refused(await send(a.port, "POST", { ...CT, ...T }, call("db_query", args)), 401, "proof_required", "tools/call without a proof", secrets);
  refused(await send(a.port, "POST", { ...CT, ...T }, { jsonrpc: "2.0", id: 1, method: "tools/list" }), 401, "proof_required", "tools/list without a proof", secrets);
  refused(await send(a.port, "POST", { ...CT, ...T }, { jsonrpc: "2.0", id: 1, method: "initialize", params: {} }), 401, "proof_required", "initialize without a proof", secrets);
  refused(await send(a.port, "GET", T), 401, "proof_required", "GET without a proof", secrets);
  refused(await send(a.port, "POST", { ...CT, Authorization: `Bearer ${bound}` }, call("db_query", args)), 401, "proof_required", "Bearer without a proof", secrets);

  // proofs made for another call, by another key, or not proofs at all
  const wrong = [
    ["other arguments", sign(holder.privateKey, { tool: "db_query", arguments: { max_rows: 2 } })],
    ["another tool", sign(holder.privateKey, { tool: "admin_delete", arguments: args })],
    ["another method", sign(holder.privateKey, { method: "tools/list" })],
    ["the thief's key", sign(thief.privateKey, { tool: "db_query", arguments: args })],
    ["garbage", "mvp1.x.y.z"],
    ["empty signature", `mvp1.${Math.floor(Date.now() / 1000)}.${"0".repeat(32)}.`],
  ];
  for (const [what, proof] of wrong) {
    refused(await send(a.port, "POST", { ...CT, ...T, "X-MCPVault-Proof": proof }, call("db_query", args)), 401, "bad_proof", `a proof for ${what} (header)`, [...secrets, proof]);
    refused(await send(a.port, "POST", { ...CT, ...T }, call("db_query", args, 1, { "mcpvault/proof": proof })), 401, "bad_proof", `a proof for ${what} (_meta)`, [...secrets, proof]);
  }
  // a proof for db_query used on admin_delete with the header proof in a batch: header proofs are for one message only
  const p = sign(holder.privateKey, { tool: "db_query", arguments: args });
  refused(await send(a.port, "POST", { ...CT, ...T, "X-MCPVault-Proof": p }, [call("db_query", args, 1), call("db_query", args, 2)]),
    401, "proof_required", "a header proof for a batch", secrets);
  assert.strictEqual(a.ran + b.ran, 0, "nothing ran");

  // the holder's own call runs once; the same proof from the log is refused on the other server sharing the store
  allowed(await send(a.port, "POST", { ...CT, ...T, "X-MCPVault-Proof": p }, call("db_query", args, 1)), "the holder's call");
  refused(await send(b.port, "POST", { ...CT, ...T, "X-MCPVault-Proof": p }, call("db_query", args, 2)), 401, "replayed", "the logged proof, another id", secrets);
  const retry = await send(b.port, "POST", { ...CT, ...T, "X-MCPVault-Proof": p }, call("db_query", args, 1));
  refused(retry, 409, "in_flight", "the logged request replayed whole (no response recorded by the middleware alone)", secrets);
  assert.strictEqual(a.ran + b.ran, 1, "one execution");

  // a server without a store refuses holder-bound calls
  const bare = await serve({});
  t.after(bare.close);
  refused(await send(bare.port, "POST", { ...CT, ...T, "X-MCPVault-Proof": sign(holder.privateKey, { tool: "db_query", arguments: args }) }, call("db_query", args)),
    401, "replayed", "holder-bound call without a store", secrets);
  assert.strictEqual(bare.ran, 0);
});

test("HTTP/2 without Content-Length: the body is read and decided (it was decided as body-less, and the handler ran what it read)", async () => {
  const http2 = await import("node:http2");
  for (const parser of ["none", "json"]) {
    const app = express4();
    if (parser === "json") app.use(express4.json());
    const ran = [];
    const auth = createMcpVaultMiddleware({ publicKeyHex: keys.publicKey })();
    // what a handler reading the stream itself (the MCP SDK's transport without parsedBody) would run
    const handler = async (req, res) => {
      let text = "";
      if (req.method === "POST" && !req.readableEnded) for await (const c of req) text += c;
      ran.push(req.body ?? text);
      res.end(J({ ok: true }));
    };
    const server = http2.createServer((req, res) => auth(req, res, () => handler(req, res)));
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    const client = http2.connect(`http://127.0.0.1:${server.address().port}`);
    const h2 = (body, length) => new Promise((resolve, reject) => {
      const headers = { ":method": "POST", ":path": "/mcp", "content-type": "application/json", "x-mcpvault-token": token };
      if (length) headers["content-length"] = String(Buffer.byteLength(body));
      const s = client.request(headers);
      let status;
      let text = "";
      s.on("response", (h) => (status = h[":status"]));
      s.on("data", (c) => (text += c));
      s.on("end", () => resolve({ status, json: text ? JSON.parse(text) : undefined }));
      s.on("error", reject);
      s.end(body);
    });
    try {
      for (const length of [false, true]) {
        const denied = await h2(J(call("admin_delete", { all: true })), length);
        assert.strictEqual(denied.status, 403, `${parser}, length ${length}: ${J(denied.json)}`);
        assert.strictEqual(denied.json.error.data.code, "tool_not_allowed");
        const allowed = await h2(J(ok()), length);
        assert.strictEqual(allowed.status, 200, `${parser}, length ${length}: ${J(allowed.json)}`);
      }
      // an empty stream is a body-less POST
      assert.strictEqual((await h2("", false)).status, 200);
      // a GET is decided at once, its stream ended or not (an SSE client may keep it open)
      for (const endStream of [true, false]) {
        const status = await new Promise((resolve, reject) => {
          const s = client.request({ ":method": "GET", ":path": "/mcp", "x-mcpvault-token": token }, { endStream });
          s.on("response", (h) => { resolve(h[":status"]); s.close(); });
          s.on("error", reject);
        });
        assert.strictEqual(status, 200, `GET, endStream ${endStream}`);
      }
      assert.strictEqual(ran.length, 5, J(ran));
      assert.ok(ran.slice(0, 2).every((b) => J(b).includes("db_query")), J(ran));
    } finally {
      client.close();
      await new Promise((r) => server.close(r));
    }
  }
});

test("a body another middleware read without setting req.body is refused, never decided as body-less (helper 36)", async () => {
  // e.g. a signature check that keeps req.rawBody: the handler would run what nothing decided
  const app = express5();
  const ran = [];
  app.use((req, res, next) => {
    let text = "";
    req.on("data", (c) => (text += c));
    req.on("end", () => { req.rawBody = text; next(); });
  });
  app.use("/mcp", createMcpVaultMiddleware({ publicKeyHex: keys.publicKey })(), (req, res) => {
    ran.push(JSON.parse(req.rawBody).params.name);
    res.json({ ok: true });
  });
  const server = await new Promise((resolve) => { const s = app.listen(0, "127.0.0.1", () => resolve(s)); });
  try {
    const r = await send(server.address().port, "POST", { ...CT, ...X(token) }, call("admin_delete", { all: true }));
    assert.strictEqual(r.status, 500, r.text);
    assert.strictEqual(r.json.error.data.code, "internal_error");
    assert.deepStrictEqual(ran, []);
  } finally {
    server.closeAllConnections?.();
    await new Promise((r) => server.close(r));
  }
});

test("a body of 600,000 tiny objects is a 400 before it is parsed, with a parser in front or none; a server raises the limits", async () => {
  const rows = Array.from({ length: 599_000 }, () => '{"":0}').join(",");
  const huge = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"db_query","arguments":{"max_rows":1,"a":[${rows}]}}}`;
  for (const parser of ["none", "json"]) {
    const s = await serve({ parser });
    try {
      for (const headers of [CT, { ...CT, ...X(token) }]) {
        const r = await send(s.port, "POST", headers, huge);
        refused(r, 400, "invalid_request", `${parser}: 4 MiB of objects`);
      }
      assert.strictEqual(s.ran, 0);
    } finally {
      await s.close();
    }
  }
  const bulk = call("db_query", { max_rows: 1, rows: Array.from({ length: 10_001 }, (_, i) => ({ id: i })) });
  const strict = await serve();
  const raised = await serve({ options: { maxBodyContainers: 20_000, maxBodyValues: 200_000 } });
  try {
    refused(await send(strict.port, "POST", { ...CT, ...X(token) }, bulk), 400, "invalid_request", "10,001 rows");
    const r = await send(raised.port, "POST", { ...CT, ...X(token) }, bulk);
    assert.deepStrictEqual([r.status, raised.ran], [200, 1]);
  } finally {
    await strict.close();
    await raised.close();
  }
});
