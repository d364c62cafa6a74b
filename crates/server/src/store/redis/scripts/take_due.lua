-- take_due: hands out a bucket's due timers, leasing them (their score
-- moves ahead by the lease) rather than removing them: a timer whose taker
-- dies before reporting it done runs again elsewhere.
-- KEYS: [1] the bucket's timers (a sorted set of '<at>|<timer json>' by
--   time).
-- ARGV: [1] now ms, [2] max timers, [3] lease ms.
-- Returns the members taken, soonest first.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), m)
end
return due
