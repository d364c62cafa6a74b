-- delete_room: deletes a forgettable room (the sweeper), if it is still
-- what the node read.
-- KEYS: none (P..'room:'..id, P..'rooms', P..'gc', P..'name:'..name,
--   P..'acct:'..account).
-- ARGV: [1] P, [2] channelId, [3] expected room JSON, [4] channelName,
--   [5 ..] the accounts indexed under the room.
-- Returns 1, or 0 when the room changed or another node deleted it first.
local id = ARGV[2]
local rk = P .. 'room:' .. id
if (redis.call('GET', rk) or '') ~= ARGV[3] then return 0 end
redis.call('DEL', rk)
redis.call('SREM', P .. 'rooms', id)
redis.call('ZREM', P .. 'gc', id)
local nk = P .. 'name:' .. ARGV[4]
if redis.call('GET', nk) == id then redis.call('DEL', nk) end
for i = 5, #ARGV do redis.call('SREM', P .. 'acct:' .. ARGV[i], id) end
return 1
