-- request_begin: claims a request of a client instance for applying, or
-- returns the record of an earlier copy of it; drops acknowledged answers.
-- The store sends this for every 64th request with an ack (its full pass
-- below); the others send its plain-command form, without the full pass
-- (RedisStore::claim_plainly). request_end is a plain HSET and PEXPIRE.
-- KEYS: [1] the instance's retry records (a hash: request id -> answer,
--   '' while running; one hash per instance, so a new instance of the
--   device starts with none).
-- ARGV: [1] request id, [2] ack ('' = none: the client has every answer
--   up to this id), [3] retention ms (the record's expiry).
-- Returns false (nil: fresh, now claimed), '' (running) or the answer.
local k = KEYS[1]
if ARGV[2] ~= '' then
  -- The ids just below the ack in one step (a client acknowledges as its
  -- answers come, so these are the ones it just got); every 64th request
  -- a full pass drops any an ack jumped over, so that a hash that never
  -- expires (its device keeps sending) stays bounded.
  local ack = tonumber(ARGV[2])
  if tonumber(ARGV[1]) % 64 == 0 then
    for _, f in ipairs(redis.call('HKEYS', k)) do
      if tonumber(f) <= ack then redis.call('HDEL', k, f) end
    end
  else
    local ids = {}
    for i = math.max(ack - 7, 0), ack do table.insert(ids, i) end
    redis.call('HDEL', k, unpack(ids))
  end
end
if redis.call('HSETNX', k, ARGV[1], '') == 1 then
  redis.call('PEXPIRE', k, ARGV[3])
  return false
end
redis.call('PEXPIRE', k, ARGV[3])
return redis.call('HGET', k, ARGV[1])
