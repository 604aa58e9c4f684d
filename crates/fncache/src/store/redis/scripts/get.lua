-- get.lua: look one entry up and record the use, atomically. The hit path: kept lean.
-- KEYS: index, values, expiry
-- ARGV: member, touch rule (none|counter|time|incr), index kind (zset|set),
--       structure ttl ms (0 = none), slide ('1' = a hit renews the structure ttl)
-- Returns the stored entry, or false on a miss. An expired entry is removed and is a miss.
local index, values, expiry, member = KEYS[1], KEYS[2], KEYS[3], ARGV[1]

local entry = redis.call('HGET', values, member)
if not entry then return false end

local now
local at = expire_at(entry)
if at ~= 0 then
  now = now_us()
  if at <= now then
    if ARGV[3] == 'set' then redis.call('SREM', index, member) else redis.call('ZREM', index, member) end
    redis.call('ZREM', expiry, member)
    redis.call('HDEL', values, member)
    return false
  end
end

touch(ARGV[2], index, member, now)
local ttl = tonumber(ARGV[4])
if ARGV[5] == '1' and ttl > 0 then slide(index, values, expiry, ttl) end
return entry
