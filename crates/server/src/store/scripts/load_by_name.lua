-- load_by_name: finds the room holding a channelName.
-- KEYS: none (P..'name:'..name, P..'room:'..id).
-- ARGV: [1] P, [2] channelName.
-- Returns {channelId, room JSON ('' when that room is gone)}, or {} when no
--   room took the name.
local id = redis.call('GET', P .. 'name:' .. ARGV[2])
if not id then return {} end
return {id, redis.call('GET', P .. 'room:' .. id) or ''}
