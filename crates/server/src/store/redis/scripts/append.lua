-- append: appends a request's entries for one account to its log, in
-- order, trims the log (count cap, then retention of entries not kept for
-- offline delivery) and says which other nodes hold a live session of the
-- account (the caller wakes them).
-- KEYS: [1] the account's presence hash (device -> '<session>|<node>'),
--   [2] its head (last seq handed out), [3] its log (a list).
-- ARGV: [1] now ms, [2] max events kept, [3] retention ms, [4] the calling
--   node, [5] count n of dead nodes (as the caller last saw them: their
--   keys expired), [6 .. 5+n] those nodes, then one
--   triple per entry: offlineEnabled ('1'/'0'), the entry's tail with its
--   body, the tail without ('' when offlineEnabled is '0'; JSON after the
--   opening brace: this script writes '{"s":<seq>,"o":<offline>,"t":<now>,'
--   in front).
-- Returns {entries dropped by the trim, count w of nodes to wake, the w
--   nodes, then seq and offline (1/0) of each entry}.
local now = ARGV[1]
local ndead = tonumber(ARGV[5])
local dead = {}
for i = 6, 5 + ndead do dead[ARGV[i]] = true end
-- Online: some device has a session on a node that is not dead. Those
-- nodes other than the caller are woken.
local online = false
local wake, seen = {}, {}
local pres = redis.call('HVALS', KEYS[1])
for _, v in ipairs(pres) do
  local node = string.match(v, '|(.*)$')
  if node and not dead[node] then
    online = true
    if node ~= ARGV[4] and not seen[node] then
      seen[node] = true
      table.insert(wake, node)
    end
  end
end
local out = {}
local seq, n
for i = 6 + ndead, #ARGV, 3 do
  local offline = ARGV[i] == '1' and not online
  local tail = ARGV[i + 2]
  if offline or tail == '' then tail = ARGV[i + 1] end
  seq = redis.call('INCR', KEYS[2])
  n = redis.call('RPUSH', KEYS[3], '{"s":' .. seq .. ',"o":' .. tostring(offline) .. ',"t":' .. now .. ',' .. tail)
  table.insert(out, seq)
  if offline then table.insert(out, 1) else table.insert(out, 0) end
end
local dropped = 0
local max = tonumber(ARGV[2])
if n and n > max then
  redis.call('LTRIM', KEYS[3], n - max, -1)
  dropped = n - max
end
local horizon = tonumber(now) - tonumber(ARGV[3])
while true do
  local front = redis.call('LINDEX', KEYS[3], 0)
  if not front then break end
  local o, t = string.match(front, '^{"s":%d+,"o":(%a+),"t":(%-?%d+)')
  if o == 'true' or tonumber(t) >= horizon then break end
  redis.call('LPOP', KEYS[3])
  dropped = dropped + 1
end
local reply = {dropped, #wake}
for _, w in ipairs(wake) do table.insert(reply, w) end
for _, v in ipairs(out) do table.insert(reply, v) end
return reply
