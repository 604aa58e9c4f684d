-- maintenance.lua: helpers of the whole-structure scripts (peek, remove, len, purge, vacuum),
-- prepended after prelude.lua. Not used on the hit or put path.

-- The entry's write time, logical expiry and physical expiry (0 = never). An entry too short
-- to carry a header never expires here: the client sees it as corrupt and overwrites it.
local function times(entry)
  if #entry < 26 then return 0, 0, 0 end
  return struct.unpack('>I8I8I8', entry, 3)
end

local function index_card(kind, index)
  if kind == 'set' then return redis.call('SCARD', index) end
  return redis.call('ZCARD', index)
end

local function remove_entry(kind, index, values, expiry, member)
  if kind == 'set' then redis.call('SREM', index, member) else redis.call('ZREM', index, member) end
  redis.call('ZREM', expiry, member)
  return redis.call('HDEL', values, member)
end

-- The entries of one structure that are stored and not expired: what `peek` finds. Counted
-- from the entries, not the index, and an expiry time counts only with its entry, so that a
-- structure whose keys are out of step (a key or some members deleted or evicted from
-- outside; the next put repairs it) is counted as it reads. Reads one key per expiry time
-- that has passed: those are few, since puts and vacuum reclaim them.
local function live_count(kind, index, values, expiry, now)
  index_card(kind, index) -- keys of the wrong type fail here, before any write
  local total = redis.call('HLEN', values)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', now)) do
    total = total - redis.call('HEXISTS', values, m)
  end
  return total
end

