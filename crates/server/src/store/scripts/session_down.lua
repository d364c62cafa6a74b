-- session_down: marks a device's session gone at now; a no-op when a newer
-- session replaced it.
-- KEYS: none (P..'pres:'..account, P..'gone:'..account,
--   P..'sessions:'..node).
-- ARGV: [1] P, [2] account, [3] device, [4] session id, [5] now ms.
-- Returns 1.
local a, d = ARGV[2], ARGV[3]
local pk = P .. 'pres:' .. a
local v = redis.call('HGET', pk, d)
if v then
  local s, n = string.match(v, '^(%d+)|(.*)$')
  if s == ARGV[4] then
    redis.call('HDEL', pk, d)
    redis.call('HSET', P .. 'gone:' .. a, d, ARGV[5])
    redis.call('SREM', P .. 'sessions:' .. n, a .. '\n' .. d .. '\n' .. s)
  end
end
return 1
