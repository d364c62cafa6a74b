-- write_room: the write of an optimistic room update; writes only if the
-- room (and, for a new room, its name) is still what the node read, and in
-- the same step schedules the timers the update asked for and puts its
-- events in the room's outbox: an answered update never lacks its timers,
-- and a node that dies after the write leaves its events to be forwarded
-- (outbox_sweep), not lost.
-- KEYS (one bucket): [1] the room, [2] the key of its name, [3] the
--   bucket's room set, [4] the bucket's forget times, [5] the bucket's
--   timers, [6] the room's outbox (a list of '<forward id>|<events JSON>',
--   oldest first), [7] the bucket's outbox due times (room -> ms).
-- ARGV: [1] channelId, [2] expected room JSON ('' = none: a new room),
--   [3] new room JSON, [4] by name ('1'/'0'), [5] expected holder of the
--   name ('' = none), [6] forget-at ms ('' = never), [7] whether the
--   forget-at differs from the stored room's ('1'/'0'), [8] the outbox
--   entry ('' = the update has no events), [9] when it counts as left
--   behind (ms), then pairs of a timer's time and member.
-- Returns {1, the outbox entries before this one (another writer's, still
--   being forwarded or left behind by a dead node; the caller forwards
--   them first)}, or {0} on conflict (the caller reads again and retries).
local id = ARGV[1]
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[2] then return {0} end
if ARGV[4] == '1' then
  if (redis.call('GET', KEYS[2]) or '') ~= ARGV[5] then return {0} end
  redis.call('SET', KEYS[2], id)
end
redis.call('SET', KEYS[1], ARGV[3])
if ARGV[2] == '' then redis.call('SADD', KEYS[3], id) end
if ARGV[7] == '1' then
  if ARGV[6] == '' then
    redis.call('ZREM', KEYS[4], id)
  else
    redis.call('ZADD', KEYS[4], ARGV[6], id)
  end
end
for i = 10, #ARGV, 2 do redis.call('ZADD', KEYS[5], ARGV[i], ARGV[i + 1]) end
local reply = {1}
if ARGV[8] ~= '' then
  local n = redis.call('RPUSH', KEYS[6], ARGV[8])
  if n == 1 then
    redis.call('ZADD', KEYS[7], ARGV[9], id)
  else
    for _, e in ipairs(redis.call('LRANGE', KEYS[6], 0, n - 2)) do table.insert(reply, e) end
  end
end
return reply
