// Answers every vector through the package's browser entry (plain ES module,
// `await init()`), cold and cached; browser-vectors.mjs compares the answers.
import * as api from "/npm/mcpvault/dist/web.mjs";
import { answer as answerWith, gateCases, gateAnswers } from "/npm/mcpvault/test-support/gate-answers.mjs";

const { init, MCPVault } = api;
const answer = (vault, c) => answerWith(api, vault, c);


let result;
try {
  let early = null;
  try { new MCPVault(); } catch (e) { early = e.message; }
  await init();
  const cases = await (await fetch("/vectors.json")).json();
  const cold = new MCPVault();
  const cached = new MCPVault({ cache: 256 });
  result = { early, cold: cases.map((c) => answer(cold, c)), cached: cases.map((c) => answer(cached, c)),
    gate: await gateAnswers(api, gateCases(cases)) };
} catch (e) {
  result = { error: String((e && e.stack) || e) };
}
document.getElementById("out").textContent = result.error ?? "done";
window.__mcpvault = result;
