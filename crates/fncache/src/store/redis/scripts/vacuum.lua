-- vacuum.lua: reclaim every expired entry of any number of structures, with the tag
-- bookkeeping of entries that are gone.
-- KEYS: index, values, expiry, tags, tagged, index, values, ... (five per structure)
-- ARGV: index kind (zset|set), the cache's near channel (see prelude.lua)
-- Returns how many entries were reclaimed.
local kind, total, now = ARGV[1], 0, now_us()
local near, changed = listening(ARGV[2]), {}
for i = 1, #KEYS, 5 do
  live_count(kind, KEYS[i], KEYS[i + 1], KEYS[i + 2], now) -- type checks before writing
  redis.call('HLEN', KEYS[i + 3])
  redis.call('ZCARD', KEYS[i + 4])
end
for i = 1, #KEYS, 5 do
  local index, values, expiry, tags, tagged = KEYS[i], KEYS[i + 1], KEYS[i + 2], KEYS[i + 3], KEYS[i + 4]
  local tagging = redis.call('HLEN', tags) > 0
  while true do
    local dead = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, 256)
    if #dead == 0 then break end
    for _, m in ipairs(dead) do
      -- An expiry time whose entry is gone (deleted from outside) is dropped, not counted.
      total = total + remove_entry(kind, index, values, expiry, m)
      if near then changed[#changed + 1] = m end
      if tagging then untag(tags, tagged, m) end
    end
  end
  if tagging then
    if redis.call('HLEN', values) == 0 then
      clear_tags(tags, tagged)
    else
      drop_orphans(values, tags, tagged)
    end
  end
end
if near then announce(ARGV[2], changed) end
return total
