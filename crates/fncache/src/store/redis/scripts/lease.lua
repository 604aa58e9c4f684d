-- lease.lua: release a key's lease, or keep it for a while longer, if the caller holds it.
-- KEYS: lease
-- ARGV: token, ms (0 = release now; otherwise the lease now ends in ms, which is how a
--       failed refresh keeps others from retrying before the fail-safe throttle passes)
-- Returns 1 when the caller held the lease.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
