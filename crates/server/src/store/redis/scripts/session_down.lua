-- session_down: marks a device's session gone at now; a no-op when a newer
-- session replaced it.
-- KEYS: [1] the account's presence hash, [2] its gone-since hash.
-- ARGV: [1] device, [2] session id, [3] now ms.
-- Returns the node the session was on (the caller drops it from that
--   node's session set), or false (nil) when it was not the live one.
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local s, n = string.match(v, '^(%d+)|(.*)$')
if s ~= ARGV[2] then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return n
