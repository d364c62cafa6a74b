-- request_begin: claims a request of a client instance for applying, or
-- returns the record of an earlier copy of it. A new instance of the
-- device starts a fresh record; acknowledged answers are dropped.
-- KEYS: none (P..'req:'..account..':'..device, a hash: '_i' = instance,
--   request id -> answer, '' while running).
-- ARGV: [1] P, [2] account, [3] device, [4] instance, [5] request id,
--   [6] ack ('' = none: the client has every answer up to this id),
--   [7] retention ms (the record's expiry).
-- Returns false (nil: fresh, now claimed), '' (running) or the answer.
local k = P .. 'req:' .. ARGV[2] .. ':' .. ARGV[3]
if redis.call('HGET', k, '_i') ~= ARGV[4] then
  redis.call('DEL', k)
  redis.call('HSET', k, '_i', ARGV[4])
end
if ARGV[6] ~= '' then
  local ack = tonumber(ARGV[6])
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if f ~= '_i' and tonumber(f) <= ack then redis.call('HDEL', k, f) end
  end
end
redis.call('PEXPIRE', k, ARGV[7])
local v = redis.call('HGET', k, ARGV[5])
if v then return v end
redis.call('HSET', k, ARGV[5], '')
return false
