-- live_session: the id of a device's session when it is on a live node.
-- KEYS: none (P..'pres:'..account, P..'node:'..node).
-- ARGV: [1] P, [2] account, [3] device.
-- Returns the session id, or false (nil).
local v = redis.call('HGET', P .. 'pres:' .. ARGV[2], ARGV[3])
if v and live(v) then return string.match(v, '^(%d+)|') end
return false
