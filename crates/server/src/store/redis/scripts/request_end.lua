-- request_end: records the answer of a request claimed by request_begin,
-- if its claim is still there (a record that expired meanwhile is not made
-- again: it would have no expiry).
-- KEYS: [1] the instance's retry records.
-- ARGV: [1] request id, [2] answer.
-- Returns 1.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
