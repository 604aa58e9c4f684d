-- remove.lua: remove one entry. Returns 1 when a live (unexpired) entry was removed.
-- KEYS: index, values, expiry (not the tag keys, as for an untagged put: the entry's tags
--       then match no entry, see prelude.lua)
-- ARGV: member, index kind (zset|set), the cache's near channel (see prelude.lua)
local index, values, expiry, member, kind = KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2]
local entry = redis.call('HGET', values, member)
index_card(kind, index)
redis.call('ZCARD', expiry)
if not entry then return 0 end
local near = listening(ARGV[3])
local _, at = times(entry)
local live = at == 0 or at > now_us()
remove_entry(kind, index, values, expiry, member)
if near then announce(ARGV[3], {member}) end
if live then return 1 end
return 0
