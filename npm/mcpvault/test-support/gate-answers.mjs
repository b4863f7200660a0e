// Answers to the vectors for the runtimes that cannot load vectors.cjs (it reads files): no Node API here, so
// workerd and browsers load it as is. `answer`: one case through vault.verify; `gateAnswers`: each verify case as a
// POSTed JSON-RPC message (token in `_meta`) through the fetch gate, authorizeFetch.

/** A vector's request (the core's snake_case JSON) as the API takes it. */
function apiRequest(c) {
  const { tool_definition, ...r } = c.request;
  return { ...r, ...(tool_definition === undefined ? {} : { toolDefinition: tool_definition }), now: c.now };
}

/** One case through a vault: `{ ok: facts }` or `{ error: code }` (vectors.cjs's answer, for these runtimes). */
export function answer(api, vault, c) {
  try {
    return { ok: vault.verify(c.token, c.public_key, apiRequest(c)) };
  } catch (e) {
    if (e instanceof api.McpVaultError) return { error: e.code };
    throw e;
  }
}

/** The verify cases a JSON-RPC message can express (a tool named on another method cannot be; an approved call needs a
 * store), with the gate's expectation: the core's answer, except that an empty token is `missing_token` at the gate. */
export function gateCases(cases) {
  return cases
    .filter((c) => c.operation === "verify" && !((c.request.method ?? "tools/call") !== "tools/call" && c.request.tool !== undefined))
    // an allowed call with approvals or a proof spends them: a gate without a store refuses it (the state vectors
    // cover that)
    .filter((c) => !((c.request.approvals !== undefined || c.request.proof !== undefined) && c.expect.ok !== undefined))
    .map((c) => (c.token === "" ? { ...c, expect: { error: "missing_token" } } : c))
    // a call the token's quotas count needs a store to count it: a gate without one refuses it (SCHEMA.md, "Quotas")
    .map((c) => (counted(c) ? { ...c, expect: { error: "rate_limited" } } : c));
}

/** An allowed call that one of its token's quotas counts (a rate on every tool or on this one, a budget on it). */
function counted(c) {
  return (c.expect.ok?.quotas ?? []).some((q) => q.tool === undefined || q.tool === c.request.tool);
}

function message(c) {
  const r = c.request;
  const method = r.method ?? "tools/call";
  const params = method === "tools/call" ? { name: r.tool, arguments: r.arguments ?? {} } : {};
  const meta = { token: c.token };
  if (r.proof !== undefined) meta["mcpvault/proof"] = r.proof;
  if (r.approvals !== undefined) meta["mcpvault/approvals"] = r.approvals;
  return { jsonrpc: "2.0", id: 1, method, params: { ...params, _meta: meta } };
}

/** `{ ok: facts }` or `{ error: code }` per case; a wrong HTTP status or a token left in the body is an error. */
export async function gateAnswers(api, cases, vault = new api.MCPVault()) {
  const answers = [];
  for (const c of cases) {
    const req = new Request("http://127.0.0.1/mcp", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(message(c)),
    });
    const toolDefinitions = c.request.tool_definition === undefined ? undefined : { [c.request.tool]: c.request.tool_definition };
    const out = await api.authorizeFetch(req, { publicKey: c.public_key, audience: c.request.audience, now: c.now, vault, toolDefinitions });
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
