-- An audit append for Redis: the entry goes on the list only if the head is still the one it was computed from, and
-- the head moves only after the list took it. mcpvault-store's redis.mjs, the CLI's crates/cli/src/store.rs and
-- Python's mcpvault.store compute the entry in the core (audit_append on the head they read) and send it here; a 0
-- means another server appended first: they read the head again. (WATCH/MULTI could not do this: EXEC runs the SET
-- of the head even when Redis refuses the RPUSH, so a list key of another type left a head no entry matches.)
-- KEYS: mcpvault:audit (the list), mcpvault:audit:head. ARGV: the head the entry was computed from ("" when none),
-- the entry. Returns 1 (appended) or 0 (the head moved). A list key of another type is an error: nothing is written.
if (redis.call("GET", KEYS[2]) or "") ~= ARGV[1] then return 0 end
redis.call("RPUSH", KEYS[1], ARGV[2])
redis.call("SET", KEYS[2], ARGV[2])
return 1
