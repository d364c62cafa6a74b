-- write_room: the write of an optimistic room update; writes only if the
-- room (and, for a new room, its name) is still what the node read, and in
-- the same step schedules the timers the update asked for and delivers its
-- events: an answered update never lacks its timers or its events.
-- The events of the accounts whose keys share the room's slot (on a single
-- Redis, every account) are appended to their logs here (append_lib.lua,
-- which the store puts in front of this file); the others' go to the
-- room's outbox, to be forwarded from there (docs/CLUSTER.md; a node that
-- dies after the write leaves them to outbox_sweep, not lost). Appending
-- here to an account that has a part in an earlier update's entry, still
-- in the outbox, would overtake it: then nothing is written and the
-- caller sends the update again with every account's events in the
-- outbox.
-- KEYS (one slot): [1] the room, [2] the key of its name, [3] the
--   bucket's room set, [4] the bucket's forget times, [5] the bucket's
--   timers, [6] the room's outbox (a list of '<forward id>|<events JSON>',
--   oldest first), [7] the bucket's outbox due times (room -> ms), then
--   for each account appended to here its keys in the order of
--   account_keys and its room index (7 keys).
-- ARGV: [1] channelId, [2] expected room JSON ('' = none: a new room),
--   [3] new room JSON, [4] by name ('1'/'0'), [5] expected holder of the
--   name ('' = none), [6] forget-at ms ('' = never), [7] whether the
--   forget-at differs from the stored room's ('1'/'0'), [8] the outbox
--   entry ('' = none), [9] when it counts as left behind (ms), [10] count
--   t of timers, then t pairs of a timer's time and member; then, when
--   accounts are appended to here, the common arguments of append_context
--   and for each such account: the account, how its part begins in an
--   outbox entry ('{"a":' and the account as JSON), its room index change
--   ('+' add, '-' remove, ''), its count m of entries and m triples (see
--   append_entries).
-- Returns {1, the outbox entries before this one (another writer's, still
--   being forwarded or left behind by a dead node; the caller forwards
--   them first; none when this update put none in the outbox), then each
--   appended account's append_entries reply}, {0} on conflict (the caller
--   reads again and retries), or {2} when an account was to be appended
--   to here that has a part in an entry still in the outbox (nothing
--   written).
local id = ARGV[1]
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[2] then return {0} end
if ARGV[4] == '1' then
  if (redis.call('GET', KEYS[2]) or '') ~= ARGV[5] then return {0} end
end
local here = #KEYS > 7
local timers_end = 10 + 2 * tonumber(ARGV[10])
local c, parts
if here then
  c, parts = append_context(timers_end + 1)
  local waiting = redis.call('LRANGE', KEYS[6], 0, -1)
  local at = parts
  for _ = 8, #KEYS, 7 do
    for _, e in ipairs(waiting) do
      if string.find(e, ARGV[at + 1], 1, true) then return {2} end
    end
    at = at + 4 + 3 * tonumber(ARGV[at + 3])
  end
end
if ARGV[4] == '1' then redis.call('SET', KEYS[2], id) end
redis.call('SET', KEYS[1], ARGV[3])
if ARGV[2] == '' then redis.call('SADD', KEYS[3], id) end
if ARGV[7] == '1' then
  if ARGV[6] == '' then
    redis.call('ZREM', KEYS[4], id)
  else
    redis.call('ZADD', KEYS[4], ARGV[6], id)
  end
end
for i = 11, timers_end, 2 do redis.call('ZADD', KEYS[5], ARGV[i], ARGV[i + 1]) end
local earlier = {}
if ARGV[8] ~= '' then
  local n = redis.call('RPUSH', KEYS[6], ARGV[8])
  if n == 1 then
    redis.call('ZADD', KEYS[7], ARGV[9], id)
  else
    earlier = redis.call('LRANGE', KEYS[6], 0, n - 2)
  end
end
local reply = {1, earlier}
if here then
  local at = parts
  for key = 8, #KEYS, 7 do
    index_change(KEYS[key + 6], id, ARGV[at + 2])
    local last = at + 3 + 3 * tonumber(ARGV[at + 3])
    table.insert(reply, append_entries(c, ARGV[at], account_keys(key), at + 4, last))
    at = last + 1
  end
end
return reply
