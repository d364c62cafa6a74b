-- delete_room: deletes a forgettable room (the sweeper), if it is still
-- what the node read. The accounts' indexes are the caller's to clean
-- (they are in other slots; an index may name more rooms than exist).
-- KEYS (one bucket): [1] the room, [2] the key of its name, [3] the
--   bucket's room set, [4] the bucket's forget times.
-- ARGV: [1] channelId, [2] expected room JSON.
-- Returns 1, or 0 when the room changed or another node deleted it first.
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
