-- purge.lua: unlink whole structures; returns how many live entries they held.
-- KEYS: index, values, expiry, tags, tagged, index, values, ... (five per structure)
-- ARGV: index kind (zset|set), the cache's near channel (see prelude.lua: near caches drop
--       every copy of the cache, whichever structures went)
local kind, total, now = ARGV[1], 0, now_us()
for i = 1, #KEYS, 5 do
  total = total + live_count(kind, KEYS[i], KEYS[i + 1], KEYS[i + 2], now)
end
local near = listening(ARGV[2])
for i = 1, #KEYS, 5 do
  redis.call('UNLINK', KEYS[i], KEYS[i + 1], KEYS[i + 2], KEYS[i + 3], KEYS[i + 4])
end
if near then publish(ARGV[2], '*') end
return total
