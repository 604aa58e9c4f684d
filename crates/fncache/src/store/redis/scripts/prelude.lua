-- prelude.lua: helpers shared by every fncache script (prepended at compile time).
--
-- A cache structure is three keys: an index (sorted set, or plain set for the random
-- policy), a hash of entries, and a sorted set of per-entry expiry times (only entries
-- that have a per-entry TTL appear in it). A stored entry is
--   format (1 byte) | codec (1 byte) | written_at_us (8, BE) | expire_at_us (8, BE, 0 = never) | payload
-- Times are server microseconds from TIME, so every client agrees on them.

local HEADER = 18

-- Calls redis and turns a type error into one that names the key, so the user knows
-- exactly which key somebody overwrote.
local function rcall(key, ...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then
    if string.find(reply.err, 'WRONGTYPE', 1, true) then
      error({err = 'WRONGTYPE fncache key ' .. key .. ' holds a value of the wrong type'})
    end
    error(reply)
  end
  return reply
end

local cached_now = nil
local function now_us()
  if not cached_now then
    local t = redis.call('TIME')
    cached_now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return cached_now
end

-- 0 when the entry never expires (or is too short to carry a header: the client
-- then sees it as corrupt and overwrites it).
local function expire_at(entry)
  if #entry < HEADER then return 0 end
  return struct.unpack('>I8', entry, 11)
end

local function is_expired(entry)
  local at = expire_at(entry)
  return at ~= 0 and at <= now_us()
end

local function index_card(kind, index)
  if kind == 'set' then return rcall(index, 'SCARD', index) end
  return rcall(index, 'ZCARD', index)
end

local function index_remove(kind, index, member)
  if kind == 'set' then return redis.call('SREM', index, member) end
  return redis.call('ZREM', index, member)
end

local function remove_entry(kind, index, values, expiry, member)
  index_remove(kind, index, member)
  redis.call('ZREM', expiry, member)
  return redis.call('HDEL', values, member)
end

-- The highest score in the index, or nil when it is empty.
local function top_of(index)
  local top = rcall(index, 'ZREVRANGE', index, 0, 0, 'WITHSCORES')
  return top[1], tonumber(top[2])
end

-- Server time in microseconds, but always above the highest score, so that two uses within
-- one microsecond (or a clock stepping back) still order as they happened.
local function time_score(index)
  local _, top = top_of(index)
  local now = now_us()
  if top and top >= now then return top + 1 end
  return now
end

-- Score for a new member, by the policy's insert rule:
-- 'counter' = one more than the highest score, 'time' = time_score, 'one' = 1.
local function fresh_score(rule, index)
  if rule == 'time' then return time_score(index) end
  if rule == 'one' then return 1 end
  local _, top = top_of(index)
  return (top or 0) + 1
end

-- Applies the policy's rule for a use (hit, or overwrite of an existing entry).
local function touch(rule, index, member)
  if rule == 'counter' then
    local first, top = top_of(index)
    if first ~= member then
      rcall(index, 'ZADD', index, (top or 0) + 1, member)
    end
  elseif rule == 'time' then
    rcall(index, 'ZADD', index, time_score(index), member)
  elseif rule == 'incr' then
    rcall(index, 'ZINCRBY', index, 1, member)
  end
end

-- Counts the entries of one structure that are stored and not expired.
local function live_count(kind, index, expiry)
  local total = index_card(kind, index)
  local dead = rcall(expiry, 'ZCOUNT', expiry, '-inf', now_us())
  return total - dead
end

