-- take_due: hands out due timers, leasing them (their score moves ahead by
-- the lease) rather than removing them: a timer whose taker dies before
-- reporting it done runs again elsewhere.
-- KEYS: none (P..'timers', a sorted set of '<at>|<timer json>' by time).
-- ARGV: [1] P, [2] now ms, [3] max timers, [4] lease ms.
-- Returns the members taken, soonest first.
local k = P .. 'timers'
local due = redis.call('ZRANGEBYSCORE', k, '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do
  redis.call('ZADD', k, tonumber(ARGV[2]) + tonumber(ARGV[4]), m)
end
return due
