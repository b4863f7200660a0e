// The replay decision every store shares, so they agree.

/** The default retry window, seconds: a retry of the same JSON-RPC request within it is not a replay. */
export const RETRY_WINDOW = 30;

/**
 * The decision of a spend from what the store holds for each nonce (`[nonce, { callKey, at } | undefined]`).
 * Shared by every store so they agree.
 */
export function spendDecision(held, callKey, now, retryWindow = RETRY_WINDOW) {
  let retry = false;
  for (const [nonce, v] of held) {
    if (v === undefined || v === null) continue;
    if (v.callKey === callKey && now - v.at <= retryWindow) retry = true;
    else return { result: "replayed", nonce };
  }
  if (retry && held.some(([, v]) => v === undefined || v === null)) {
    // part of the chain spent by this very call, part not: cannot be a retry of it
    return { result: "replayed", nonce: held.find(([, v]) => v)[0] };
  }
  return { result: retry ? "retry" : "fresh" };
}
