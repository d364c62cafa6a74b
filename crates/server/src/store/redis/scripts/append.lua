-- append: appends a request's entries for one account to its log, in
-- order, and those kept for offline delivery (offlineEnabled, and no device
-- of the account online) to its offline list too; trims both (see
-- LogLimits in store/mod.rs) and says which other nodes hold a live session
-- of the account (the caller wakes them). For a forward out of a room's
-- outbox (docs/CLUSTER.md) it also updates the account's room index, and
-- applies each forward once: a forward seen before (two nodes forwarding
-- one left-behind entry) changes nothing.
-- KEYS: [1] the account's presence hash (device -> '<session>|<node>'),
--   [2] its head (last seq handed out), [3] its log (a list), [4] its
--   offline list, [5] its cursors (a hash), [6] the largest seq the
--   offline list dropped for room, [7] the ids of the last forwards it got
--   from the room (space separated, newest first), [8] its room index.
-- ARGV: [1] now ms, [2] max events kept in the log, [3] its retention ms,
--   [4] the calling node, [5] max events kept in the offline list, [6] its
--   retention ms, [7] the room forwarded from ('' = not a forward), [8] the
--   forward's id, [9] the room index change ('+' add, '-' remove, ''),
--   [10] how long KEYS[7] is kept (ms), [11] count n of dead nodes (as the
--   caller last saw them: their keys expired), [12 .. 11+n] those nodes,
--   then one triple per entry: offlineEnabled ('1'/'0'), the entry's tail
--   without its body, the tail with it ('' when offlineEnabled is '0'; JSON
--   after the opening brace: this script writes
--   '{"s":<seq>,"o":<offline>,"t":<now>,' in front).
-- Returns {-1} for a forward seen before, else {entries dropped from the
--   log, count w of nodes to wake, the w nodes, then seq and offline (1/0)
--   of each entry}.
local FORWARDS_KEPT = 32
if ARGV[7] ~= '' then
  local seen = redis.call('GET', KEYS[7]) or ''
  if string.find(' ' .. seen .. ' ', ' ' .. ARGV[8] .. ' ', 1, true) then return {-1} end
  local kept = {ARGV[8]}
  for w in string.gmatch(seen, '%S+') do
    if #kept >= FORWARDS_KEPT then break end
    table.insert(kept, w)
  end
  redis.call('SET', KEYS[7], table.concat(kept, ' '), 'PX', ARGV[10])
  if ARGV[9] == '+' then
    redis.call('SADD', KEYS[8], ARGV[7])
  elseif ARGV[9] == '-' then
    redis.call('SREM', KEYS[8], ARGV[7])
  end
end
local ndead = tonumber(ARGV[11])
local first = 12 + ndead
if first > #ARGV then return {0, 0} end
local now = ARGV[1]
local dead = {}
for i = 12, 11 + ndead do dead[ARGV[i]] = true end
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
local n, noff
-- One step of the head for all the entries.
local count = (#ARGV - first + 1) / 3
local seq = redis.call('INCRBY', KEYS[2], count) - count
for i = first, #ARGV, 3 do
  local offline = ARGV[i] == '1' and not online
  seq = seq + 1
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
