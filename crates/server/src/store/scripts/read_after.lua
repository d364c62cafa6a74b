-- read_after: the entries of an account's log after a sequence.
-- KEYS: none (P..'log:'..account).
-- ARGV: [1] P, [2] account, [3] after (seq), [4] max entries.
-- Returns the stored entries with seq > after, oldest first, at most max.
local key = P .. 'log:' .. ARGV[2]
local front = redis.call('LINDEX', key, 0)
if not front then return {} end
local first = tonumber(string.match(front, '^{"s":(%d+)'))
local skip = tonumber(ARGV[3]) + 1 - first
if skip < 0 then skip = 0 end
return redis.call('LRANGE', key, skip, skip + tonumber(ARGV[4]) - 1)
