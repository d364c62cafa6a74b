-- live_devices: an account's devices whose session is on a live node.
-- KEYS: none (P..'pres:'..account, P..'node:'..node).
-- ARGV: [1] P, [2] account.
-- Returns the device ids.
local out = {}
local all = redis.call('HGETALL', P .. 'pres:' .. ARGV[2])
for i = 1, #all, 2 do
  if live(all[i + 1]) then table.insert(out, all[i]) end
end
return out
