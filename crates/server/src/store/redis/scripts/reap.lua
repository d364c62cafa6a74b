-- reap: hands a dead node's sessions to one caller, once.
-- KEYS (one node): [1] its liveness key, [2] its reaped mark, [3] its
--   session set ('<account>\n<device>\n<session>').
-- ARGV: [1] how long the reaped mark is kept (ms).
-- Returns the sessions to the one caller that reaps the node, false (nil)
--   to every other (and while the node is alive).
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return false end
local s = redis.call('SMEMBERS', KEYS[3])
redis.call('DEL', KEYS[3])
return s
