-- invalidate_tag.lua: remove every entry carrying a tag, with its tag bookkeeping, in any
-- number of structures (each script at once: no put interleaves), and mark the time in each, so
-- that a put of a tagged value whose computation began before it is refused.
-- KEYS: index, values, expiry, tags, tagged, index, values, ... (five per structure)
-- ARGV: index kind (zset|set), the tag as put.lua writes it (4-byte length and bytes), the
--       cache's near channel (see prelude.lua)
-- Returns how many live (unexpired) entries were removed, as remove.lua counts.
local kind, prefix, total, now = ARGV[1], ARGV[2], 0, now_us()
local near, changed = listening(ARGV[3]), {}
for i = 1, #KEYS, 5 do
  live_count(kind, KEYS[i], KEYS[i + 1], KEYS[i + 2], now) -- type checks before writing
  redis.call('HLEN', KEYS[i + 3])
  redis.call('ZCARD', KEYS[i + 4])
end
-- Every pair of the tag is the prefix and 16 more bytes: this range holds them all, and no
-- other tag's (another length differs in the first four bytes, another tag in the rest).
local low, high = '[' .. prefix, '[' .. prefix .. string.rep('\255', 16)
for i = 1, #KEYS, 5 do
  local index, values, expiry, tags, tagged = KEYS[i], KEYS[i + 1], KEYS[i + 2], KEYS[i + 3], KEYS[i + 4]
  for _, pair in ipairs(redis.call('ZRANGEBYLEX', tagged, low, high)) do
    local member = string.sub(pair, #prefix + 1)
    -- Only the entry these tags were written with (not one stored since without them).
    if tags_match(values, tags, member) then
      local _, at = times(redis.call('HGET', values, member))
      if at == 0 or at > now then total = total + 1 end
      remove_entry(kind, index, values, expiry, member)
      if near then changed[#changed + 1] = member end
    end
    untag(tags, tagged, member)
  end
  -- A tagged value computed before now is not stored by a later put (see put.lua).
  redis.call('HSET', tags, 'g', now)
end
if near then announce(ARGV[3], changed) end
return total
