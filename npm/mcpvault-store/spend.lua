-- The store's atomic step for Redis: the same rules as the core's state::decide (src/state.rs), which every other
-- store calls; tests/vectors/state holds this copy to the same answers. mcpvault-store's redis.mjs, the CLI's
-- crates/cli/src/store.rs and Python's mcpvault.store all run this file, with the KEYS and ARGV of the core's
-- redis::redis_call, and read its reply with redis::redis_answer (src/redis.rs).
-- KEYS: mcpvault:revoked, then mcpvault:nonce:N per nonce (n of them), then mcpvault:result:CALLKEY when n > 0, then
-- mcpvault:quota:KEY per quota charge (m of them).
-- ARGV: call key, now, keep until (unix seconds, the guard's clock), retry window (seconds), n, m, probe (1: the
-- nonces are only read, for a dry run), p (the last p nonces are proofs': spent, by the call key "refused", even
-- when a quota refuses the call), then per charge its max, amount, ttl and probe (4 m values; a
-- probe charge is only read), then the token's revocation ids. Keys expire after (keep until - now) seconds (a charge: its ttl) on
-- Redis's clock, and longer by as much as the guard's clock is ahead of Redis's (TIME: Redis 5 or later): neither a
-- skew between the two clocks nor a guard whose clock jumped ahead can drop a spent nonce or a counter early.
-- Returns {"revoked", id} | {"in_flight"} | {"done", response} | {"replayed", nonce key} |
-- {"quota", charge index (from 1), used} | {"fresh" (nonces spent now) or "none", the nonce key a probe found spent
-- or "", the first probe charge that would not fit (index from 1) or "0", its used}.
local n, m, probe, p = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7] == "1", tonumber(ARGV[8])
for i = 9 + 4 * m, #ARGV do
  if redis.call("SISMEMBER", KEYS[1], ARGV[i]) == 1 then return {"revoked", ARGV[i]} end
end
local now, window = tonumber(ARGV[2]), tonumber(ARGV[4])
local probed = ""
if n > 0 then
  local retry, unspent, first_held = false, false, nil
  for i = 2, n + 1 do
    local v = redis.call("GET", KEYS[i])
    if v then
      first_held = first_held or KEYS[i]
      local sep = string.find(v, "|", 1, true)
      local key, at = string.sub(v, 1, sep - 1), tonumber(string.sub(v, sep + 1))
      if key == ARGV[1] and now - at <= window then retry = true
      elseif probe then
        if probed == "" then probed = KEYS[i] end
      else return {"replayed", KEYS[i]} end
    else unspent = true end
  end
  if not probe then
    -- part of the chain spent by this very call, part not: it cannot be a retry of it
    if retry and unspent then return {"replayed", first_held} end
    -- a retry runs nothing: it spends no quota
    if retry then
      local r = redis.call("GET", KEYS[n + 2])
      if r then return {"done", r} end
      return {"in_flight"}
    end
  end
end
-- how far the guard's clock is ahead of Redis's: keys live that much longer (never shorter)
local ahead = math.max(now - tonumber(redis.call("TIME")[1]), 0)
local nonce_ttl = math.max(tonumber(ARGV[3]) - now, 1) + ahead
-- quotas: every counter stays within its max, or nothing is written (but a refused call's proofs)
local qbase = (n > 0) and (n + 2) or 1
local used, probe_j, probe_used = {}, "0", ""
for j = 1, m do
  local held = redis.call("GET", KEYS[qbase + j])
  local u = 0
  if held then u = tonumber(held) end
  local at = 5 + 4 * j
  local max, amount, only_read = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), ARGV[at + 3] == "1"
  -- a counter that is not a non-negative number refuses (never an allow)
  local sound = not (u == nil or u ~= u or u < 0)
  if not sound then u = max end
  if only_read then
    if (not sound or u + amount > max) and probe_j == "0" then
      probe_j, probe_used = tostring(j), string.format("%.17g", u)
    end
  else
    if not sound or u + amount > max then
      if n > 0 and not probe then
        for i = n + 2 - p, n + 1 do redis.call("SET", KEYS[i], "refused|" .. ARGV[2], "EX", nonce_ttl) end
      end
      return {"quota", tostring(j), string.format("%.17g", u)}
    end
    used[j] = u + amount
  end
end
local spent = n > 0 and not probe
if spent then
  for i = 2, n + 1 do
    redis.call("SET", KEYS[i], ARGV[1] .. "|" .. ARGV[2], "EX", nonce_ttl)
  end
end
for j = 1, m do
  if used[j] then
    redis.call("SET", KEYS[qbase + j], string.format("%.17g", used[j]), "EX", math.max(tonumber(ARGV[7 + 4 * j]), 1) + ahead)
  end
end
if spent then return {"fresh", probed, probe_j, probe_used} end
return {"none", probed, probe_j, probe_used}
