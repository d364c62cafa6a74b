-- outbox_done: drops the entries at the front of a room's outbox that the
-- caller forwarded (to every account they name); what follows them is
-- another writer's, due later.
-- KEYS (one bucket): [1] the room's outbox, [2] the bucket's outbox due
--   times.
-- ARGV: [1] channelId, [2] when what is left counts as left behind (ms),
--   [3 ..] the forward ids the caller forwarded.
-- Returns 1.
local done = {}
for i = 3, #ARGV do done[ARGV[i]] = true end
local left = false
while true do
  local front = redis.call('LPOP', KEYS[1])
  if not front then break end
  if not done[string.match(front, '^([^|]*)|')] then
    redis.call('LPUSH', KEYS[1], front)
    left = true
    break
  end
end
if left then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
