-- reap: ends a dead node's membership of the cluster, once: only the one
-- caller whose SREM removes it from the node set gets its sessions.
-- KEYS: none (P..'node:'..node, P..'nodes', P..'sessions:'..node).
-- ARGV: [1] P, [2] node.
-- Returns the node's sessions ('<account>\n<device>\n<session>') to that
-- caller, false (nil) to every other (or while the node is alive).
if redis.call('EXISTS', P .. 'node:' .. ARGV[2]) == 1 then return false end
if redis.call('SREM', P .. 'nodes', ARGV[2]) == 0 then return false end
local s = redis.call('SMEMBERS', P .. 'sessions:' .. ARGV[2])
redis.call('DEL', P .. 'sessions:' .. ARGV[2])
return s
