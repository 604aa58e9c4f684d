-- vacuum.lua: reclaim every expired entry of any number of structures.
-- KEYS: index, values, expiry, index, values, expiry, ...
-- ARGV: index kind (zset|set)
-- Returns how many entries were reclaimed.
local kind, total, now = ARGV[1], 0, now_us()
for i = 1, #KEYS, 3 do
  live_count(kind, KEYS[i], KEYS[i + 1], KEYS[i + 2], now) -- type checks before writing
end
for i = 1, #KEYS, 3 do
  local index, values, expiry = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  while true do
    local dead = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, 256)
    if #dead == 0 then break end
    for _, m in ipairs(dead) do
      -- An expiry time whose entry is gone (deleted from outside) is dropped, not counted.
      total = total + remove_entry(kind, index, values, expiry, m)
    end
  end
end
return total
