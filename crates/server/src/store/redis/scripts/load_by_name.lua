-- load_by_name: finds the room holding a channelName.
-- KEYS: [1] the name's key (its room is in the same bucket).
-- ARGV: [1] what the bucket's room keys start with.
-- Returns {channelId, room JSON ('' when that room is gone)}, or {} when no
--   room took the name.
local id = redis.call('GET', KEYS[1])
if not id then return {} end
return {id, redis.call('GET', ARGV[1] .. id) or ''}
