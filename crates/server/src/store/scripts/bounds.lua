-- bounds: where an account's log stands, drawing the store's epoch if it
-- has none (a flushed or restarted Redis).
-- KEYS: none (P..'epoch', P..'head:'..account, P..'log:'..account).
-- ARGV: [1] P, [2] account, [3] a fresh epoch (used only if none is set).
-- Returns {epoch, first seq kept (head + 1 when none), head}.
redis.call('SET', P .. 'epoch', ARGV[3], 'NX')
local epoch = redis.call('GET', P .. 'epoch')
local head = tonumber(redis.call('GET', P .. 'head:' .. ARGV[2]) or '0')
local front = redis.call('LINDEX', P .. 'log:' .. ARGV[2], 0)
local first = head + 1
if front then first = tonumber(string.match(front, '^{"s":(%d+)')) end
return {epoch, first, head}
