// Timing for the Node benchmarks (node.mjs, mini.mjs): medians of 5 runs, µs per call.
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median of 5 runs of `n` calls of `f`, µs per call, after a short warm-up. */
export function time(n, f) {
  for (let i = 0; i < Math.min(n, 50); i++) f();
  const runs = [];
  for (let r = 0; r < 5; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f();
    runs.push(Number(process.hrtime.bigint() - t) / 1e3 / n);
  }
  return median(runs);
}

/** The same for an async `f`, awaited one call at a time. */
export async function timeAsync(n, f) {
  for (let i = 0; i < 20; i++) await f();
  const runs = [];
  for (let r = 0; r < 5; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await f();
    runs.push(Number(process.hrtime.bigint() - t) / 1e3 / n);
  }
  return median(runs);
}
