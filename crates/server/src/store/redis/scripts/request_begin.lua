-- request_begin: claims a request of a client instance for applying, or
-- returns the record of an earlier copy of it. A new instance of the
-- device starts a fresh record; acknowledged answers are dropped.
-- KEYS: [1] the device's retry records (a hash: '_i' = instance, request
--   id -> answer, '' while running).
-- ARGV: [1] instance, [2] request id, [3] ack ('' = none: the client has
--   every answer up to this id), [4] retention ms (the record's expiry).
-- Returns false (nil: fresh, now claimed), '' (running) or the answer.
local k = KEYS[1]
if redis.call('HGET', k, '_i') ~= ARGV[1] then
  redis.call('DEL', k)
  redis.call('HSET', k, '_i', ARGV[1])
end
if ARGV[3] ~= '' then
  local ack = tonumber(ARGV[3])
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if f ~= '_i' and tonumber(f) <= ack then redis.call('HDEL', k, f) end
  end
end
redis.call('PEXPIRE', k, ARGV[4])
local v = redis.call('HGET', k, ARGV[2])
if v then return v end
redis.call('HSET', k, ARGV[2], '')
return false
