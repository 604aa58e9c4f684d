-- purge.lua: unlink whole structures; returns how many live entries they held.
-- KEYS: index, values, expiry, tags, tagged, sketch, meta, index, values, ... (seven per
--       structure; the last two only exist for Policy::TinyLfu, and meta (:6) only where its
--       earlier layout left it)
-- ARGV: index kind (zset|set), the cache's near channel (see prelude.lua: near caches drop
--       every copy of the cache, whichever structures went)
local kind, total, now = ARGV[1], 0, now_us()
for i = 1, #KEYS, 7 do
  total = total + live_count(kind, KEYS[i], KEYS[i + 1], KEYS[i + 2], now)
end
local near = listening(ARGV[2])
for i = 1, #KEYS, 7 do
  redis.call('UNLINK', KEYS[i], KEYS[i + 1], KEYS[i + 2], KEYS[i + 3], KEYS[i + 4], KEYS[i + 5], KEYS[i + 6])
end
if near then publish(ARGV[2], '*') end
return total
