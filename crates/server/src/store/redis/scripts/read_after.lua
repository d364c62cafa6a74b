-- read_after: the entries of an account's log after a sequence.
-- KEYS: [1] the account's log.
-- ARGV: [1] after (seq), [2] max entries.
-- Returns the stored entries with seq > after, oldest first, at most max.
local front = redis.call('LINDEX', KEYS[1], 0)
if not front then return {} end
local first = tonumber(string.match(front, '^{"s":(%d+)'))
local skip = tonumber(ARGV[1]) + 1 - first
if skip < 0 then skip = 0 end
return redis.call('LRANGE', KEYS[1], skip, skip + tonumber(ARGV[2]) - 1)
