-- append: appends a request's entries for one account to its log, in
-- order, and those kept for offline delivery (offlineEnabled, and no device
-- of the account online) to its offline list too; trims both (see
-- LogLimits in store/mod.rs) and says which other nodes hold a live session
-- of the account (the caller wakes them).
-- KEYS: [1] the account's presence hash (device -> '<session>|<node>'),
--   [2] its head (last seq handed out), [3] its log (a list), [4] its
--   offline list, [5] its cursors (a hash), [6] the largest seq the
--   offline list dropped for room.
-- ARGV: [1] now ms, [2] max events kept in the log, [3] its retention ms,
--   [4] the calling node, [5] max events kept in the offline list, [6] its
--   retention ms, [7] count n of dead nodes (as the caller last saw them:
--   their keys expired), [8 .. 7+n] those nodes, then one triple per
--   entry: offlineEnabled ('1'/'0'), the entry's tail without its body,
--   the tail with it ('' when offlineEnabled is '0'; JSON after the
--   opening brace: this script writes '{"s":<seq>,"o":<offline>,"t":<now>,'
--   in front).
-- Returns {entries dropped from the log, count w of nodes to wake, the w
--   nodes, then seq and offline (1/0) of each entry}.
local now = ARGV[1]
local ndead = tonumber(ARGV[7])
local dead = {}
for i = 8, 7 + ndead do dead[ARGV[i]] = true end
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
local seq, n, noff
for i = 8 + ndead, #ARGV, 3 do
  local offline = ARGV[i] == '1' and not online
  seq = redis.call('INCR', KEYS[2])
  local head = '{"s":' .. seq .. ',"o":' .. tostring(offline) .. ',"t":' .. now .. ','
  n = redis.call('RPUSH', KEYS[3], head .. ARGV[i + 1])
  if offline then
    noff = redis.call('RPUSH', KEYS[4], head .. ARGV[i + 2])
  end
  table.insert(out, seq)
  if offline then table.insert(out, 1) else table.insert(out, 0) end
end
-- The log: the count cap, then the retention, whatever the entry. Every
-- entry outlives its retention only until the next append, so the whole
-- list may go once the newest has: the expiry forgets an idle account's
-- log exactly when trimming it would have emptied it.
local dropped = 0
local max = tonumber(ARGV[2])
if n and n > max then
  redis.call('LTRIM', KEYS[3], n - max, -1)
  dropped = n - max
end
local function trim_old(list, ms)
  local horizon = tonumber(now) - tonumber(ms)
  local popped = 0
  while true do
    local front = redis.call('LINDEX', list, 0)
    if not front then break end
    local t = string.match(front, '^{"s":%d+,"o":%a+,"t":(%-?%d+)')
    if tonumber(t) >= horizon then break end
    redis.call('LPOP', list)
    popped = popped + 1
  end
  return popped
end
dropped = dropped + trim_old(KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
-- The offline list: its own cap (what it drops is remembered, so the next
-- fresh login can say so) and retention. The cursors matter only while it
-- holds something, so they expire with it.
if noff then
  local maxoff = tonumber(ARGV[5])
  if noff > maxoff then
    local last = redis.call('LINDEX', KEYS[4], noff - maxoff - 1)
    redis.call('LTRIM', KEYS[4], noff - maxoff, -1)
    redis.call('SET', KEYS[6], string.match(last, '^{"s":(%d+)'))
  end
  trim_old(KEYS[4], ARGV[6])
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
  redis.call('PEXPIRE', KEYS[5], ARGV[6])
  redis.call('PEXPIRE', KEYS[6], ARGV[6])
end
local reply = {dropped, #wake}
for _, w in ipairs(wake) do table.insert(reply, w) end
for _, v in ipairs(out) do table.insert(reply, v) end
return reply
