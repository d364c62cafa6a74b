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
-- Returns {-1} for a forward seen before, else what append_entries does.
if ARGV[2] ~= '' then
  if forwarded_before(KEYS[7], ARGV[3], ARGV[5]) then return {-1} end
  index_change(KEYS[8], ARGV[2], ARGV[4])
end
local c, first = append_context(6)
return append_entries(c, ARGV[1], account_keys(1), first, #ARGV)
