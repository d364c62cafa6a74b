-- set_cursor: records the last seq a device was given; the cursor only
-- moves forward.
-- KEYS: none (P..'cur:'..account).
-- ARGV: [1] P, [2] account, [3] device, [4] seq.
-- Returns 1.
local k = P .. 'cur:' .. ARGV[2]
if tonumber(redis.call('HGET', k, ARGV[3]) or '0') < tonumber(ARGV[4]) then
  redis.call('HSET', k, ARGV[3], ARGV[4])
end
return 1
