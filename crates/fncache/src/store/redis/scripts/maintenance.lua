-- maintenance.lua: helpers of the whole-structure scripts (peek, remove, len, purge, vacuum),
-- prepended after prelude.lua. Not used on the hit or put path.

local function index_card(kind, index)
  if kind == 'set' then return redis.call('SCARD', index) end
  return redis.call('ZCARD', index)
end

local function remove_entry(kind, index, values, expiry, member)
  if kind == 'set' then redis.call('SREM', index, member) else redis.call('ZREM', index, member) end
  redis.call('ZREM', expiry, member)
  return redis.call('HDEL', values, member)
end

-- The entries of one structure that are stored and not expired.
local function live_count(kind, index, values, expiry, now)
  redis.call('HLEN', values) -- a values key of the wrong type fails here, before any write
  return index_card(kind, index) - redis.call('ZCOUNT', expiry, '-inf', now)
end

