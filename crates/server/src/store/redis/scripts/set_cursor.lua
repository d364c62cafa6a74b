-- set_cursor: records the last seq a device was given; the cursor only
-- moves forward. A cursor only says where a fresh login's offline list
-- starts, so it is kept only while that list holds something, and expires
-- with it.
-- KEYS: [1] the account's cursors (a hash: device -> seq), [2] its offline
--   list.
-- ARGV: [1] device, [2] seq.
-- Returns 1.
local ttl = redis.call('PTTL', KEYS[2])
if ttl <= 0 then return 1 end
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
