-- The store's atomic step for Redis: the same rules as the core's state::decide (src/state.rs), which every other
-- store calls; tests/vectors/state holds this copy to the same answers. mcpvault-store's redis.mjs, the CLI's
-- crates/cli/src/store.rs and Python's mcpvault.store all run this file.
-- KEYS: mcpvault:revoked, then mcpvault:nonce:N per nonce (n of them), then mcpvault:result:CALLKEY when n > 0.
-- ARGV: call key, now, keep until (unix seconds, the guard's clock), retry window (seconds), n, then the token's
-- revocation ids. Keys expire after (keep until - now) seconds on Redis's clock: a skew between the two clocks cannot
-- drop a spent nonce early.
-- Returns {"revoked", id} | {"none"} (nothing to spend) | {"fresh"} | {"in_flight"} | {"done", response} |
-- {"replayed", nonce key}.
local n = tonumber(ARGV[5])
for i = 6, #ARGV do
  if redis.call("SISMEMBER", KEYS[1], ARGV[i]) == 1 then return {"revoked", ARGV[i]} end
end
if n == 0 then return {"none"} end
local now, window = tonumber(ARGV[2]), tonumber(ARGV[4])
local retry, unspent, first_held = false, false, nil
for i = 2, n + 1 do
  local v = redis.call("GET", KEYS[i])
  if v then
    first_held = first_held or KEYS[i]
    local sep = string.find(v, "|", 1, true)
    local key, at = string.sub(v, 1, sep - 1), tonumber(string.sub(v, sep + 1))
    if key == ARGV[1] and now - at <= window then retry = true
    else return {"replayed", KEYS[i]} end
  else unspent = true end
end
-- part of the chain spent by this very call, part not: it cannot be a retry of it
if retry and unspent then return {"replayed", first_held} end
if retry then
  local r = redis.call("GET", KEYS[n + 2])
  if r then return {"done", r} end
  return {"in_flight"}
end
local ttl = math.max(tonumber(ARGV[3]) - now, 1)
for i = 2, n + 1 do
  redis.call("SET", KEYS[i], ARGV[1] .. "|" .. ARGV[2], "EX", ttl)
end
return {"fresh"}
