-- request_end: records the answer of a request claimed by request_begin
-- (if the record still belongs to that instance and claim).
-- KEYS: [1] the device's retry records.
-- ARGV: [1] instance, [2] request id, [3] answer.
-- Returns 1.
if redis.call('HGET', KEYS[1], '_i') == ARGV[1] and redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
return 1
