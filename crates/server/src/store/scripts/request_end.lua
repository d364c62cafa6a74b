-- request_end: records the answer of a request claimed by request_begin
-- (if the record still belongs to that instance and claim).
-- KEYS: none (P..'req:'..account..':'..device).
-- ARGV: [1] P, [2] account, [3] device, [4] instance, [5] request id,
--   [6] answer.
-- Returns 1.
local k = P .. 'req:' .. ARGV[2] .. ':' .. ARGV[3]
if redis.call('HGET', k, '_i') == ARGV[4] and redis.call('HEXISTS', k, ARGV[5]) == 1 then
  redis.call('HSET', k, ARGV[5], ARGV[6])
end
return 1
