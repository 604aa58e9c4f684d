-- remove.lua: remove one entry. Returns 1 when a live (unexpired) entry was removed.
-- KEYS: index, values, expiry
-- ARGV: member, index kind (zset|set)
local index, values, expiry = KEYS[1], KEYS[2], KEYS[3]
local member, kind = ARGV[1], ARGV[2]
local entry = rcall(values, 'HGET', values, member)
index_card(kind, index)
rcall(expiry, 'ZCARD', expiry)
if not entry then return 0 end
local live = not is_expired(entry)
remove_entry(kind, index, values, expiry, member)
if live then return 1 end
return 0
