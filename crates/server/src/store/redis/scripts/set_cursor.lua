-- set_cursor: records the last seq a device was given; the cursor only
-- moves forward.
-- KEYS: [1] the account's cursors (a hash: device -> seq).
-- ARGV: [1] device, [2] seq.
-- Returns 1.
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
