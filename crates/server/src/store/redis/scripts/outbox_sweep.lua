-- outbox_sweep: the sweeper's look at one bucket's rooms whose outbox
-- entries are due (their writers had OUTBOX_GRACE_MS to forward them).
-- A room whose outbox is empty by now (its writers forwarded and dropped
-- their entries, which they do with a plain LREM) leaves the due set
-- here; the entries of any other room are handed to this forwarder and
-- leased: their due time moves ahead, so that no other node takes them
-- meanwhile unless this one dies too.
-- KEYS (one bucket): [1] the bucket's outbox due times, [2 ..] the
--   outboxes of the rooms to look at.
-- ARGV: [1] now ms, [2] lease-until ms, [3 ..] the rooms' channelIds, in
--   the order of their outboxes in KEYS.
-- Returns, for each room with entries due, its channelId followed by a
-- list of its entries, oldest first.
local out = {}
for i = 2, #KEYS do
  local room = ARGV[i + 1]
  local due = redis.call('ZSCORE', KEYS[1], room)
  if due and tonumber(due) <= tonumber(ARGV[1]) then
    local entries = redis.call('LRANGE', KEYS[i], 0, -1)
    if #entries == 0 then
      redis.call('ZREM', KEYS[1], room)
    else
      redis.call('ZADD', KEYS[1], ARGV[2], room)
      table.insert(out, room)
      table.insert(out, entries)
    end
  end
end
return out
