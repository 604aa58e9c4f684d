-- len.lua: live entries over any number of structures.
-- KEYS: index, values, expiry, index, values, expiry, ...
-- ARGV: index kind (zset|set)
local kind, total, now = ARGV[1], 0, now_us()
for i = 1, #KEYS, 3 do
  total = total + live_count(kind, KEYS[i], KEYS[i + 1], KEYS[i + 2], now)
end
return total
