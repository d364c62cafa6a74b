-- outbox_take: hands a room's left-behind outbox entries to one forwarder
-- (the sweeper of some node), leasing them: their due time moves ahead, so
-- that no other node takes them meanwhile unless this one dies too.
-- KEYS (one bucket): [1] the room's outbox, [2] the bucket's outbox due
--   times.
-- ARGV: [1] channelId, [2] now ms, [3] lease-until ms.
-- Returns the entries, oldest first ({} when none are due, or none left).
local due = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return {} end
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
if #entries == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
return entries
