-- get.lua: look one entry up and record the use, atomically.
-- KEYS: index, values, expiry
-- ARGV: member, touch rule (none|counter|time|incr), index kind (zset|set),
--       structure ttl ms (0 = none), slide ('1' = a hit renews the structure ttl)
-- Returns the stored entry, or false on a miss. An expired entry is removed and is a miss.
local index, values, expiry = KEYS[1], KEYS[2], KEYS[3]
local member, rule, kind = ARGV[1], ARGV[2], ARGV[3]
local ttl, slide = tonumber(ARGV[4]), ARGV[5] == '1'

local entry = rcall(values, 'HGET', values, member)
if not entry then return false end
if is_expired(entry) then
  remove_entry(kind, index, values, expiry, member)
  return false
end
touch(rule, index, member)
if slide and ttl > 0 then
  redis.call('PEXPIRE', index, ttl)
  redis.call('PEXPIRE', values, ttl)
  redis.call('PEXPIRE', expiry, ttl)
end
return entry
