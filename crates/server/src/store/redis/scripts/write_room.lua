-- write_room: the write of an optimistic room update; writes only if the
-- room (and, for a new room, its name) is still what the node read, and
-- schedules the timers the update asked for in the same step, so an
-- answered update never lacks its timers.
-- KEYS (one bucket): [1] the room, [2] the key of its name, [3] the
--   bucket's room set, [4] the bucket's forget times, [5] the bucket's
--   timers.
-- ARGV: [1] channelId, [2] expected room JSON ('' = none), [3] new room
--   JSON, [4] by name ('1'/'0'), [5] expected holder of the name ('' =
--   none), [6] forget-at ms ('' = never), then pairs of a timer's time and
--   member.
-- Returns 1, or 0 on conflict (the caller reads again and retries).
local id = ARGV[1]
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[2] then return 0 end
if ARGV[4] == '1' then
  if (redis.call('GET', KEYS[2]) or '') ~= ARGV[5] then return 0 end
  redis.call('SET', KEYS[2], id)
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[3], id)
if ARGV[6] == '' then
  redis.call('ZREM', KEYS[4], id)
else
  redis.call('ZADD', KEYS[4], ARGV[6], id)
end
for i = 7, #ARGV, 2 do redis.call('ZADD', KEYS[5], ARGV[i], ARGV[i + 1]) end
return 1
