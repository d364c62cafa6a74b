-- append: appends an entry to an account's log, trims the log (count cap,
-- then retention of entries not kept for offline delivery) and publishes
-- a wake-up.
-- KEYS: none (P..'pres:'..account, P..'head:'..account, P..'log:'..account,
--   P..'logsize', channel P..'signals').
-- ARGV: [1] P, [2] account, [3] offlineEnabled ('1'/'0'), [4] now ms,
--   [5] max events kept, [6] retention ms, [7] entry tail with its body,
--   [8] entry tail without (JSON after the opening brace; this script
--   writes '{"s":<seq>,"o":<offline>,"t":<now>,' in front).
-- Returns {seq, 1 when kept for offline delivery else 0}.
local a = ARGV[2]
local offline = false
if ARGV[3] == '1' then
  offline = true
  for _, v in ipairs(redis.call('HVALS', P .. 'pres:' .. a)) do
    if live(v) then offline = false; break end
  end
end
local seq = redis.call('INCR', P .. 'head:' .. a)
local tail = ARGV[8]
if offline then tail = ARGV[7] end
local key = P .. 'log:' .. a
local n = redis.call('RPUSH', key, '{"s":' .. seq .. ',"o":' .. tostring(offline) .. ',"t":' .. ARGV[4] .. ',' .. tail)
local dropped = 0
local max = tonumber(ARGV[5])
if n > max then
  redis.call('LTRIM', key, n - max, -1)
  dropped = n - max
end
local horizon = tonumber(ARGV[4]) - tonumber(ARGV[6])
while true do
  local front = redis.call('LINDEX', key, 0)
  if not front then break end
  local o, t = string.match(front, '^{"s":%d+,"o":(%a+),"t":(%-?%d+)')
  if o == 'true' or tonumber(t) >= horizon then break end
  redis.call('LPOP', key)
  dropped = dropped + 1
end
redis.call('INCRBY', P .. 'logsize', 1 - dropped)
redis.call('PUBLISH', P .. 'signals', 'w|' .. a)
if offline then return {seq, 1} end
return {seq, 0}
