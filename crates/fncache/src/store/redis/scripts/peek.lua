-- peek.lua: is a live entry stored? Changes nothing: no score, no ttl, no removal.
-- KEYS: values
-- ARGV: member
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then return 0 end
local _, at = times(entry)
if at ~= 0 and at <= now_us() then return 0 end
return 1
