-- peek.lua: is a live entry stored? Changes nothing: no score, no ttl, no removal.
-- KEYS: values
-- ARGV: member
local values, member = KEYS[1], ARGV[1]
local entry = rcall(values, 'HGET', values, member)
if not entry or is_expired(entry) then return 0 end
return 1
