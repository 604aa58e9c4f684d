-- prelude.lua: the few helpers every fncache script shares (prepended at compile time).
--
-- A cache structure is three keys: an index (sorted set, or plain set for the random
-- policy), a hash of entries, and a sorted set of per-entry expiry times (only entries
-- that have a per-entry TTL appear in it, scored by the time they are deleted). A stored
-- entry is
--   format (1) | codec (1) | written_at_us (8) | expire_at_us (8) | keep_until_us (8) | payload
-- (big-endian; 0 = never): past expire_at the entry is no longer served normally, but it is
-- kept until keep_until as a fail-safe fallback for when recomputing it fails.
-- Times are server microseconds from TIME, so every client agrees on them.
--
-- Every script but get.lua (the hit path, which stands alone) starts with this, so it stays
-- small: each helper defined here is a closure created per call. A key of the wrong type makes
-- redis.call fail before anything is written; the client then names the key (it asks TYPE of
-- each key of the failed script).

local function now_us()
  local t = redis.call('TIME')
  return t[1] * 1000000 + t[2]
end

-- Applies the policy's rule for a use (a hit, or an overwrite of an existing entry):
-- 'counter' makes the member the highest score unless it already is (only the order
-- matters), 'time' scores it with server time (strictly increasing across scripts, which run
-- one at a time and each take more than a microsecond; a hit in get.lua scores with the
-- caller's clock, never moving a score back), 'incr' adds one.
local function touch(rule, index, member, now)
  if rule == 'time' then
    redis.call('ZADD', index, now or now_us(), member)
  elseif rule == 'counter' then
    -- Arguments as strings, as put.lua's (counters are integers, far below 2^53).
    local top = redis.call('ZREVRANGE', index, '0', '0', 'WITHSCORES')
    if top[1] ~= member then
      redis.call('ZADD', index, string.format('%d', (tonumber(top[2]) or 0) + 1), member)
    end
  elseif rule == 'incr' then
    redis.call('ZINCRBY', index, '1', member)
  end
end

-- Renews the structure TTL once it has run down by a step (1% of it, at most a second), so
-- a busy structure costs one PTTL per put instead of a PEXPIRE per key. (get.lua, the hit
-- path, has the client decide instead: see there.)
local function slide(index, values, expiry, ttl)
  local step = math.min(1000, math.floor(ttl / 100))
  if ttl - redis.call('PTTL', index) >= step then
    redis.call('PEXPIRE', index, ttl)
    redis.call('PEXPIRE', values, ttl)
    redis.call('PEXPIRE', expiry, ttl)
  end
end


-- Tag bookkeeping, per structure: `tags` (`:3`) is a hash from a tagged member to the write
-- time of its entry (8 bytes, as in the envelope) and its tags, each a 4-byte big-endian length
-- and the tag's bytes; `tagged` (`:4`) is a sorted set, every score 0, of each such
-- length-and-tag followed by the 16-byte member, so that one lexicographic range finds a tag's
-- members (the length makes no tag's range take in another's). Tags belong to an entry only
-- while its write time matches: an untagged put or a removal that does not name the tag keys
-- (see put.lua) leaves bookkeeping that matches no entry, dropped by the next tagged put once
-- such orphans outnumber the entries, by vacuum, or by the invalidation of their tag. The tags
-- hash has one more field, `g` (never 16 bytes long, so never a member): the server time of
-- the structure's last tag invalidation, which a tagged put computed before it may not pass.

-- Forgets `member`'s tags.
local function untag(tags, tagged, member)
  local packed = redis.call('HGET', tags, member)
  if not packed then return end
  redis.call('HDEL', tags, member)
  local pos = 9
  while pos + 3 <= #packed do
    local n = struct.unpack('>I4', packed, pos)
    redis.call('ZREM', tagged, string.sub(packed, pos, pos + 3 + n) .. member)
    pos = pos + 4 + n
  end
end

-- True when `member`'s tags are those of its entry in `values` (present, same write time).
local function tags_match(values, tags, member)
  local packed = redis.call('HGET', tags, member)
  local entry = redis.call('HGET', values, member)
  if not packed or not entry or #entry < 10 or #packed < 8 then return false end
  return string.sub(entry, 3, 10) == string.sub(packed, 1, 8)
end

-- Forgets the tags that match no entry (see above).
local function drop_orphans(values, tags, tagged)
  for _, m in ipairs(redis.call('HKEYS', tags)) do
    if #m == 16 and not tags_match(values, tags, m) then untag(tags, tagged, m) end
  end
end

-- Drops the tag bookkeeping of a structure whose entries went whole, keeping `g`.
local function clear_tags(tags, tagged)
  local at = redis.call('HGET', tags, 'g')
  redis.call('UNLINK', tags, tagged)
  if at then redis.call('HSET', tags, 'g', at) end
end

-- Near caches (see near.rs): a script that changes entries tells the processes that keep
-- near copies of them, on the cache's channel (an ARGV, not a key), with one message: 'm' and
-- the 16-byte members changed, or '*' for the whole cache. The ARGV is 'p' and the channel
-- (pub/sub, one server), 's' and the channel (sharded pub/sub on a cluster: the channel has the
-- structure's hash tag, so its messages come from the node of the slot), or '' (none). Only
-- when a process listens (PUBSUB NUMSUB / SHARDNUMSUB, which a script may call): a cache that
-- nobody near-caches pays one lookup of the channel per write, and publishes (and replicates)
-- nothing. So the scripts of every process publish whatever that process's own settings, and
-- a process that subscribes before it keeps near copies hears of every change made after.
-- ACL: a user that may not ask (no `+pubsub|numsub`) cannot tell, and publishes nothing, as
-- before near caches existed; one that finds a listener but may not publish (`+publish` and the
-- channel) fails here, before the script writes anything: no change without its message.
-- Every script asks before its first write.
local function near_channel(arg)
  local sharded = string.sub(arg, 1, 1) == 's'
  return string.sub(arg, 2), sharded and 'SHARDNUMSUB' or 'NUMSUB', sharded and 'SPUBLISH' or 'PUBLISH'
end

-- Redis 6.2 has no `redis.acl_check_cmd` (7.0+): there the lookup and a probe (an 'm' message
-- naming no member, which subscribers read as "nothing changed") are the checks themselves,
-- made with `redis.pcall` before the first write; a refusal or a missing command (6.2 has no
-- sharded pub/sub, so nobody listens on a sharded channel) answers as on 7.0.
local function listening(arg)
  if arg == nil or arg == '' then return false end
  local channel, numsub, publish = near_channel(arg)
  local may = redis.acl_check_cmd
  if may and not may('PUBSUB', numsub, channel) then return false end
  local subscribers = redis.pcall('PUBSUB', numsub, channel)
  if subscribers.err or subscribers[2] == 0 then return false end
  local allowed
  if may then
    allowed = may(publish, channel, '*')
  else
    local probe = redis.pcall(publish, channel, 'm')
    allowed = type(probe) ~= 'table' or not probe.err
  end
  if not allowed then
    local refusal = 'NOPERM this user may not publish on ' .. channel .. ', where processes ' ..
      'keep near copies of the cache (grant +' .. string.lower(publish) .. ' and the ' ..
      'channel): nothing was changed'
    -- Redis 6.2 cannot raise a table (its handler concatenates the error): a string there,
    -- which it wraps in `ERR Error running script ...`; the client finds the code inside.
    if may then error({err = refusal}) end
    error(refusal)
  end
  return true
end

-- Publishes `payload` on the near channel `arg`.
local function publish(arg, payload)
  local channel, _, command = near_channel(arg)
  redis.call(command, channel, payload)
end

-- Publishes members changed (a Lua table of 16-byte members) when not empty.
local function announce(arg, members)
  if #members > 0 then publish(arg, 'm' .. table.concat(members)) end
end
