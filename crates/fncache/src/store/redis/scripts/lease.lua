-- lease.lua: release a key's lease, or hold it back for a while, if the caller holds it.
-- KEYS: lease
-- ARGV: token, ms (0 = release now; otherwise the lease is marked held back ('!' .. token)
--       and ends in ms: a failed recomputation keeps others from retrying before the
--       fail-safe throttle passes, and they serve the fallback meanwhile)
-- Returns 1 when the caller held the lease.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], '!' .. ARGV[1], 'PX', ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
