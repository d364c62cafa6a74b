-- append: appends a request's entries for one account (append_lib.lua,
-- which the store puts in front of this file, says how). For a forward
-- out of a room's outbox (docs/CLUSTER.md) it also updates the account's
-- room index, and applies each forward once: a forward seen before (two
-- nodes forwarding one left-behind entry) changes nothing.
-- KEYS: [1 .. 6] the account's keys in the order of account_keys, [7] the
--   ids of the last forwards it got from the room (space separated, newest
--   first), [8] its room index.
-- ARGV: [1] the account, [2] the room forwarded from ('' = not a
--   forward), [3] the forward's id, [4] the room index change ('+' add,
--   '-' remove, ''), [5] how long KEYS[7] is kept (ms), [6 ..] the common
--   arguments of append_context, then one triple per entry (see
--   append_entries).
-- Returns, for a forward seen before, {-1, count w of nodes for the
--   caller to wake, the w nodes}: its first forwarder may have died
--   between the append and the wake-ups (a session woken for nothing new
--   reads nothing). Else what append_entries does.
local c, first = append_context(6)
if ARGV[2] ~= '' then
  if forwarded_before(KEYS[7], ARGV[3], ARGV[5]) then
    local _, nodes = sessions(c, KEYS[1])
    local reply = {-1}
    nodes = wake_or_name(c, ARGV[1], nodes)
    table.insert(reply, #nodes)
    for _, n in ipairs(nodes) do table.insert(reply, n) end
    return reply
  end
  index_change(KEYS[8], ARGV[2], ARGV[4])
end
return append_entries(c, ARGV[1], account_keys(1), first, #ARGV)
