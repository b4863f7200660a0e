// A Worker that answers the vectors POSTed to it, with the package's workerd entry.
import * as api from "../../mcpvault/dist/workerd.mjs";
import { answer as answerWith, gateAnswers } from "../../mcpvault/test-support/gate-answers.mjs";

const { MCPVault } = api;
const answer = (vault, c) => answerWith(api, vault, c);


export default {
  async fetch(request) {
    const cases = await request.json();
    if (new URL(request.url).pathname === "/gate") return Response.json(await gateAnswers(api, cases));
    const cold = new MCPVault();
    const cached = new MCPVault({ cache: 256 });
    return Response.json({ cold: cases.map((c) => answer(cold, c)), cached: cases.map((c) => answer(cached, c)) });
  },
};
