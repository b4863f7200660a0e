// Answers to the vectors for the runtimes that cannot load vectors.cjs (it reads files): no Node API here, so
// workerd and browsers load it as is. `answer`: one case through vault.verify; `gateAnswers`: each verify case as a
// POSTed JSON-RPC message (token in `_meta`) through the fetch gate, authorizeFetch.

/** One case through a vault: `{ ok: facts }` or `{ error: code }` (vectors.cjs's answer, for these runtimes). */
export function answer(api, vault, c) {
  try {
    return { ok: vault.verify(c.token, c.public_key, { ...c.request, now: c.now }) };
  } catch (e) {
    if (e instanceof api.McpVaultError) return { error: e.code };
    throw e;
  }
}

/** The verify cases a JSON-RPC message can express (a tool named on another method cannot be), with the gate's
 * expectation: the core's answer, except that an empty token is `missing_token` at the gate. */
export function gateCases(cases) {
  return cases
    .filter((c) => c.operation === "verify" && !((c.request.method ?? "tools/call") !== "tools/call" && c.request.tool !== undefined))
    .map((c) => (c.token === "" ? { ...c, expect: { error: "missing_token" } } : c));
}

function message(c) {
  const r = c.request;
  const method = r.method ?? "tools/call";
  const params = method === "tools/call" ? { name: r.tool, arguments: r.arguments ?? {} } : {};
  return { jsonrpc: "2.0", id: 1, method, params: { ...params, _meta: { token: c.token } } };
}

/** `{ ok: facts }` or `{ error: code }` per case; a wrong HTTP status or a token left in the body is an error. */
export async function gateAnswers(api, cases, vault = new api.MCPVault()) {
  const answers = [];
  for (const c of cases) {
    const req = new Request("http://127.0.0.1/mcp", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(message(c)),
    });
    const out = await api.authorizeFetch(req, { publicKey: c.public_key, audience: c.request.audience, now: c.now, vault });
    if (out.ok) {
      answers.push(out.body.params._meta === undefined ? { ok: out.facts } : { error: "token left in the body" });
      continue;
    }
    const body = await out.response.json();
    const same = out.response.status === api.statusOf(out.error.code) && body.error.data.code === out.error.code;
    answers.push(same ? { error: out.error.code } : { error: `bad challenge: ${out.response.status} ${body.error.data.code}` });
  }
  return answers;
}
