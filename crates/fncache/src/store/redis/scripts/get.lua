-- get.lua: look one entry up, record the use, and (when asked) take the key's lease,
-- atomically. The hit path: kept lean.
-- KEYS: index, values, expiry, and the lease only when one is asked for (lease ms > 0)
-- ARGV: member, touch rule (none|counter|time|incr), index kind (zset|set),
--       structure ttl ms (0 = none), slide ('1' = a hit renews the structure ttl),
--       refresh after ms (0 = never stale), lease ms (0 = take no lease), lease token
-- Returns the bare entry for a fresh hit (the hot path: no table to build), else
-- {state, lease, entry}:
--   state 0 miss, 2 stale (older than refresh-after: served, worth refreshing),
--         3 expired (past its entry TTL, kept only as a fallback: recompute);
--   lease 0 not asked (fresh hits never ask), 1 the caller holds it, 2 another caller does,
--         3 held back after a failed recomputation (serve the fallback, do not retry).
local index, values, expiry, member = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local refresh_after, lease_ms = tonumber(ARGV[6]), tonumber(ARGV[7])

local function leased(state, entry)
  if lease_ms > 0 then return {state, take_lease(KEYS[4], ARGV[8], lease_ms), entry} end
  return {state, 0, entry}
end

local entry = redis.call('HGET', values, member)
if not entry then return leased(0, false) end

local now
-- An entry without a per-entry TTL has expire_at = keep_until = 0: one unpack tells.
local expire_at = #entry >= 26 and struct.unpack('>I8', entry, 11) or 0
if expire_at ~= 0 then
  now = now_us()
  local keep_until = struct.unpack('>I8', entry, 19)
  if keep_until ~= 0 and keep_until <= now then
    if ARGV[3] == 'set' then redis.call('SREM', index, member) else redis.call('ZREM', index, member) end
    redis.call('ZREM', expiry, member)
    redis.call('HDEL', values, member)
    return leased(0, false)
  end
  if expire_at ~= 0 and expire_at <= now then return leased(3, entry) end
end

touch(ARGV[2], index, member, now)
local ttl = tonumber(ARGV[4])
if ARGV[5] == '1' and ttl > 0 then slide(index, values, expiry, ttl) end
if refresh_after > 0 and #entry >= 26 then
  now = now or now_us()
  if now - struct.unpack('>I8', entry, 3) >= refresh_after * 1000 then return leased(2, entry) end
end
return entry
