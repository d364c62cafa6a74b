-- bounds: where an account's log stands, drawing the account's epoch if it
-- has none (never seen, or its keys were lost with a flushed or failed
-- Redis: its old sequence numbers then mean nothing).
-- KEYS: [1] the account's epoch, [2] its head, [3] its log, [4] the
--   largest seq its offline list dropped for room.
-- ARGV: [1] a fresh epoch (used only if none is set).
-- Returns {epoch, first seq kept (head + 1 when none), head, that largest
--   dropped seq (0: none)}.
redis.call('SET', KEYS[1], ARGV[1], 'NX')
local epoch = redis.call('GET', KEYS[1])
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
local front = redis.call('LINDEX', KEYS[3], 0)
local first = head + 1
if front then first = tonumber(string.match(front, '^{"s":(%d+)')) end
local trimmed = tonumber(redis.call('GET', KEYS[4]) or '0')
return {epoch, first, head, trimmed}
