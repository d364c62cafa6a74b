-- session_up: marks a device's session live on a node, replacing the
-- device's earlier session (on whichever node).
-- KEYS: none (P..'pres:'..account, P..'gone:'..account,
--   P..'sessions:'..node).
-- ARGV: [1] P, [2] account, [3] device, [4] session id, [5] node.
-- Returns the id of the replaced session, or false (nil) when none.
local a, d = ARGV[2], ARGV[3]
local pk = P .. 'pres:' .. a
local old = redis.call('HGET', pk, d)
redis.call('HSET', pk, d, ARGV[4] .. '|' .. ARGV[5])
redis.call('HDEL', P .. 'gone:' .. a, d)
redis.call('SADD', P .. 'sessions:' .. ARGV[5], a .. '\n' .. d .. '\n' .. ARGV[4])
if old then
  local s, n = string.match(old, '^(%d+)|(.*)$')
  redis.call('SREM', P .. 'sessions:' .. n, a .. '\n' .. d .. '\n' .. s)
  return s
end
return false
