-- append_lib: how entries are appended to an account's log, shared by
-- append.lua (an account's own script) and write_room.lua (which appends
-- in the room's write for the accounts whose keys share the room's slot:
-- on a single Redis, every account). The store puts this file in front of
-- each of them when it loads them; it defines functions only.
--
-- The common arguments, at ARGV[at ..]: now ms, max events kept in the
-- log, its retention ms, the calling node, max events kept in the offline
-- list, its retention ms, the command that wakes a node ('' = the script
-- names the nodes to wake and the caller wakes them; 'PUBLISH' on a single
-- Redis, where the script may publish on any channel), what a node's
-- channel starts and ends with, count n of dead nodes (as the caller last
-- saw them: their keys expired), then those n nodes.

local FORWARDS_KEPT = 32

-- The common arguments at ARGV[at ..] as a table, and the index after them.
local function append_context(at)
  local c = {
    now = ARGV[at], max = tonumber(ARGV[at + 1]), retention = ARGV[at + 2],
    node = ARGV[at + 3], maxoff = tonumber(ARGV[at + 4]),
    offretention = ARGV[at + 5], wake = ARGV[at + 6],
    channel = {ARGV[at + 7], ARGV[at + 8]}, dead = {},
  }
  local ndead = tonumber(ARGV[at + 9])
  for i = at + 10, at + 9 + ndead do c.dead[ARGV[i]] = true end
  return c, at + 10 + ndead
end

-- Whether forward `id` reached the account before (its last forward ids
-- from the room are in `key`, space separated, newest first); if not,
-- remembers it for `ms`.
local function forwarded_before(key, id, ms)
  local seen = redis.call('GET', key) or ''
  if string.find(' ' .. seen .. ' ', ' ' .. id .. ' ', 1, true) then return true end
  local kept = {id}
  for w in string.gmatch(seen, '%S+') do
    if #kept >= FORWARDS_KEPT then break end
    table.insert(kept, w)
  end
  redis.call('SET', key, table.concat(kept, ' '), 'PX', ms)
  return false
end

-- Adds room to ('+') or removes it from ('-') the room index `key`.
local function index_change(key, room, change)
  if change == '+' then
    redis.call('SADD', key, room)
  elseif change == '-' then
    redis.call('SREM', key, room)
  end
end

-- Drops the entries of `list` older than `ms` before now; how many.
local function trim_old(list, now, ms)
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

-- Appends the entries ARGV[first .. last] of `account` in order: one
-- triple each of offlineEnabled ('1'/'0'), the entry's tail without its
-- body, the tail with it ('' when offlineEnabled is '0'; JSON after the
-- opening brace: this writes '{"s":<seq>,"o":<offline>,"t":<now>,' in
-- front). Those kept for offline delivery (offlineEnabled, and no device
-- of the account online) go to its offline list too. Trims both (see
-- LogLimits in store/mod.rs) and wakes the other nodes holding a live
-- session of the account, or names them.
-- k: the account's presence hash (device -> '<session>|<node>'), head
--   (last seq handed out), log (a list), offline list, cursors (a hash),
--   and the largest seq the offline list dropped for room.
-- Returns {entries dropped from the log, count w of nodes for the caller
--   to wake, the w nodes, then seq and offline (1/0) of each entry}.
-- Whether the account whose presence hash is `pres` is online (some
-- device has a session on a node that is not dead), and those nodes other
-- than the caller's.
local function sessions(c, pres)
  local online = false
  local nodes, seen = {}, {}
  for _, v in ipairs(redis.call('HVALS', pres)) do
    local node = string.match(v, '|(.*)$')
    if node and not c.dead[node] then
      online = true
      if node ~= c.node and not seen[node] then
        seen[node] = true
        table.insert(nodes, node)
      end
    end
  end
  return online, nodes
end

-- Wakes `nodes` for `account` when the script may (c.wake), and returns
-- the nodes left for the caller to wake.
local function wake_or_name(c, account, nodes)
  if c.wake == '' then return nodes end
  for _, w in ipairs(nodes) do
    redis.call(c.wake, c.channel[1] .. w .. c.channel[2], 'w|' .. account)
  end
  return {}
end

local function append_entries(c, account, k, first, last)
  if first > last then return {0, 0} end
  local online, wake = sessions(c, k.pres)
  local out = {}
  local n, noff
  -- One step of the head for all the entries.
  local count = (last - first + 1) / 3
  local seq = redis.call('INCRBY', k.head, count) - count
  for i = first, last, 3 do
    local offline = ARGV[i] == '1' and not online
    seq = seq + 1
    local head = '{"s":' .. seq .. ',"o":' .. tostring(offline) .. ',"t":' .. c.now .. ','
    n = redis.call('RPUSH', k.log, head .. ARGV[i + 1])
    if offline then
      noff = redis.call('RPUSH', k.off, head .. ARGV[i + 2])
    end
    table.insert(out, seq)
    if offline then table.insert(out, 1) else table.insert(out, 0) end
  end
  -- The log: the count cap, then the retention, whatever the entry. Every
  -- entry outlives its retention only until the next append, so the whole
  -- list may go once the newest has: the expiry forgets an idle account's
  -- log exactly when trimming it would have emptied it.
  local dropped = 0
  if n and n > c.max then
    redis.call('LTRIM', k.log, n - c.max, -1)
    dropped = n - c.max
  end
  dropped = dropped + trim_old(k.log, c.now, c.retention)
  redis.call('PEXPIRE', k.log, c.retention)
  -- The offline list: its own cap (what it drops is remembered, so the next
  -- fresh login can say so) and retention. The cursors matter only while it
  -- holds something, so they expire with it.
  if noff then
    if noff > c.maxoff then
      local dropped_last = redis.call('LINDEX', k.off, noff - c.maxoff - 1)
      redis.call('LTRIM', k.off, noff - c.maxoff, -1)
      redis.call('SET', k.otrim, string.match(dropped_last, '^{"s":(%d+)'))
    end
    trim_old(k.off, c.now, c.offretention)
    redis.call('PEXPIRE', k.off, c.offretention)
    redis.call('PEXPIRE', k.cur, c.offretention)
    redis.call('PEXPIRE', k.otrim, c.offretention)
  end
  wake = wake_or_name(c, account, wake)
  local reply = {dropped, #wake}
  for _, w in ipairs(wake) do table.insert(reply, w) end
  for _, v in ipairs(out) do table.insert(reply, v) end
  return reply
end

-- An account's keys, from KEYS[at ..] in the order append_entries names
-- them.
local function account_keys(at)
  return {
    pres = KEYS[at], head = KEYS[at + 1], log = KEYS[at + 2],
    off = KEYS[at + 3], cur = KEYS[at + 4], otrim = KEYS[at + 5],
  }
end
