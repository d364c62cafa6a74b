-- session_up: marks a device's session live on a node, replacing the
-- device's earlier session (on whichever node).
-- KEYS: [1] the account's presence hash, [2] its gone-since hash.
-- ARGV: [1] device, [2] session id, [3] node.
-- Returns the replaced session as '<session>|<node>', or false (nil).
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[1])
return old or false
