-- write_room: the write of an optimistic room update; writes only if the
-- room (and, for a new room, its name) is still what the node read.
-- KEYS: none (P..'room:'..id, P..'name:'..name, P..'rooms', P..'gc',
--   P..'acct:'..account).
-- ARGV: [1] P, [2] channelId, [3] expected room JSON ('' = none), [4] new
--   room JSON, [5] by name ('1'/'0'), [6] channelName, [7] expected holder
--   of the name ('' = none), [8] forget-at ms ('' = never), [9] count n of
--   accounts leaving the index, [10 .. 9+n] those accounts, then the
--   accounts joining it.
-- Returns 1, or 0 on conflict (the caller reads again and retries).
local id = ARGV[2]
local rk = P .. 'room:' .. id
if (redis.call('GET', rk) or '') ~= ARGV[3] then return 0 end
if ARGV[5] == '1' then
  local nk = P .. 'name:' .. ARGV[6]
  if (redis.call('GET', nk) or '') ~= ARGV[7] then return 0 end
  redis.call('SET', nk, id)
end
redis.call('SET', rk, ARGV[4])
redis.call('SADD', P .. 'rooms', id)
if ARGV[8] == '' then
  redis.call('ZREM', P .. 'gc', id)
else
  redis.call('ZADD', P .. 'gc', ARGV[8], id)
end
local gone = tonumber(ARGV[9])
for i = 10, 9 + gone do redis.call('SREM', P .. 'acct:' .. ARGV[i], id) end
for i = 10 + gone, #ARGV do redis.call('SADD', P .. 'acct:' .. ARGV[i], id) end
return 1
