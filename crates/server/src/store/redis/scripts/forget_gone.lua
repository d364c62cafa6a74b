-- forget_gone: drops a device's gone-since record once its absence has
-- been dealt with, unless a later absence replaced it.
-- KEYS: [1] the account's gone-since hash.
-- ARGV: [1] device, [2] the since (ms) that was dealt with.
-- Returns 1 when dropped, 0 otherwise.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
