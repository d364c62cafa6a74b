-- prelude: the helpers every script starts with (redis.rs puts this file
-- in front of each of the others before compiling it).
-- KEYS: none. Every script builds its keys from the prefix, so the store
--   needs one Redis instance, not a sharded Redis Cluster.
-- ARGV[1]: P, the key prefix (ending in ':'); every script takes it first.
-- Defines P and live(v): whether the presence value v ('<session>|<node>')
--   names a node whose key P..'node:'..<node> still exists.
local P = ARGV[1]
local function live(v)
  local node = string.match(v, '|(.*)$')
  return node ~= nil and redis.call('EXISTS', P .. 'node:' .. node) == 1
end
