-- Spends a token's nonces for one call, atomically (all or none): mcpvault-store's redis.mjs and the CLI's
-- src/store.rs both run this file. KEYS: mcpvault:nonce:N per nonce. ARGV: call key, now, expiry (unix seconds),
-- retry window (seconds). Returns {"fresh"} | {"retry"} | {"replayed", key}.
local retry = false
local fresh = 0
for i, k in ipairs(KEYS) do
  local v = redis.call("GET", k)
  if v then
    local sep = string.find(v, "|", 1, true)
    local key, at = string.sub(v, 1, sep - 1), tonumber(string.sub(v, sep + 1))
    if key == ARGV[1] and tonumber(ARGV[2]) - at <= tonumber(ARGV[4]) then retry = true
    else return {"replayed", k} end
  else fresh = fresh + 1 end
end
if retry and fresh > 0 then
  for i, k in ipairs(KEYS) do if redis.call("EXISTS", k) == 1 then return {"replayed", k} end end
end
if retry then return {"retry"} end
for i, k in ipairs(KEYS) do
  redis.call("SET", k, ARGV[1] .. "|" .. ARGV[2], "EXAT", ARGV[3])
end
return {"fresh"}
