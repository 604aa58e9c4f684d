-- vacuum.lua: reclaim every expired entry of any number of structures.
-- KEYS: index, values, expiry, index, values, expiry, ...
-- ARGV: index kind (zset|set)
-- Returns how many entries were reclaimed.
local kind, total = ARGV[1], 0
for i = 1, #KEYS, 3 do
  local index, values, expiry = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  index_card(kind, index)
  rcall(values, 'HLEN', values)
  while true do
    local dead = rcall(expiry, 'ZRANGEBYSCORE', expiry, '-inf', now_us(), 'LIMIT', 0, 256)
    if #dead == 0 then break end
    for _, m in ipairs(dead) do
      remove_entry(kind, index, values, expiry, m)
      total = total + 1
    end
  end
end
return total
