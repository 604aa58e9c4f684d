-- put.lua: store one entry, evicting by policy when the index is full, atomically.
-- KEYS: index, values, expiry, then tags and tagged (see prelude.lua) only for a tagged put,
--       then the lease only when a token is given to release it. (On a cluster every declared
--       key must be on the node mid-migration, so an untagged put never names the tag keys,
--       which an untagged cache never has: it leaves the tags of the entries it evicts or
--       overwrites, which no longer match their entries, to the next tagged put.)
-- ARGV: member, envelope head (format+codec, 2 bytes), payload,
--       insert rule (counter|time|one|set), touch rule (none|counter|time|incr),
--       victim rule (min|max|random), maxsize, structure ttl ms (0 = none),
--       slide ('1' = every put renews the structure ttl), entry ttl ms (0 = none),
--       keep ms (how long past the write a fallback is kept; 0 = until the entry TTL;
--       without an entry TTL, the entry's lifetime),
--       lease token ('' = none: a lease held with this token is released),
--       the entry's tags, each a 4-byte big-endian length and its bytes ('' = none; they
--       replace the tags the member had),
--       when the computation of a tagged value may have begun ('' = not a computed value: no
--       check): '=' and this server's TIME when it answered the call's lookup (exact: the
--       same clock as the invalidation's), else '~' and how many microseconds before the put
--       was sent the caller began (an estimate: the put may have spent any time on its way,
--       so a second more is allowed for it); a tagged value whose computation began before
--       the structure's last tag invalidation is not stored (the lease is still released),
--       refresh ms (0 = none): the entry goes stale this long after the write whatever the
--       lookup's refresh-after, and is written in format 2 (refresh_at_us after the times),
--       the cache's near channel (see prelude.lua: the member stored and every member
--       evicted, reclaimed or dropped by a repair are announced there when a process listens)
-- For Policy::TinyLfu, the insert rule is 'tlfu:' and its shape (tinylfu.lua is prepended),
-- and its sketch key comes last in KEYS.
-- Returns {evicted, reclaimed}: live entries evicted by policy, expired entries reclaimed.
-- A structure whose index and entries are out of step (a key or some members deleted or
-- evicted from outside) is put right first, so every put leaves it consistent and within
-- maxsize.
local index, values, expiry, member = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local new_tags = ARGV[13]
local tagging = new_tags ~= ''
local tags, tagged = KEYS[4], KEYS[5]
local lease_key = KEYS[tagging and 6 or 4]
local insert, victim = ARGV[4], ARGV[6]
local maxsize, ttl, entry_ttl = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[10])
local is_set = insert == 'set'
local tlfu = string.sub(insert, 1, 5) == 'tlfu:'
local sketch, shape, st = KEYS[#KEYS], nil, nil
if tlfu then shape = tlfu_shape(insert) end
-- Index members plus entries up to which a structure out of step is repaired member by member
-- (about a millisecond of work); a larger one is dropped whole.
local HEAL_LIMIT = 2048
local now = now_us()
-- `now` as redis.call's argument: a string made once, since redis.call formats a number
-- argument with '%.17g' each time, which costs more. (Microseconds since 1970 stay below
-- 2^53: the same score either way.)
local now_arg = string.format('%d', now)
local evicted, reclaimed = 0, 0
local near = listening(ARGV[16])
-- Members whose entries this put changes or deletes, for near caches (only when one listens);
-- `dropped_all` when a repair drops the structure whole.
local changed, dropped_all = {member}, false

-- Reads come first: a key of the wrong type fails here, before anything is written.
local size = redis.call(is_set and 'SCARD' or 'ZCARD', index)
local stored = redis.call('HLEN', values)
if tlfu then st = tlfu_load(sketch, shape) end
local tag_count = 0
if tagging then
  tag_count = redis.call('HLEN', tags)
  redis.call('ZCARD', tagged)
end
local began = ARGV[14]
if tagging and began ~= '' and tag_count > 0 then
  local at = tonumber(string.sub(began, 2)) or 0
  if string.sub(began, 1, 1) == '~' then at = now - at - 1000000 end
  local invalidated = tonumber(redis.call('HGET', tags, 'g') or '0')
  if invalidated >= at then
    -- Computed from what an invalidation since has declared out of date.
    if ARGV[12] ~= '' and redis.call('GET', lease_key) == ARGV[12] then redis.call('DEL', lease_key) end
    return {0, 0}
  end
end
if tag_count > 0 and size == 0 and stored == 0 then
  -- The entries went whole (the structure's TTL): so does the bookkeeping they left.
  clear_tags(tags, tagged)
end
if size ~= stored then
  -- The index and the entries are out of step: someone deleted one of the keys or some of
  -- their members, or Redis evicted a key under maxmemory. Entries outside the index would
  -- never be evicted (the structure would outgrow maxsize) and index members without an entry
  -- would be counted by len: put the structure right before storing. A structure that lost
  -- its index or its entries whole, or is too large to check here, starts afresh (UNLINK frees
  -- it in the background); a small one keeps the members found in both.
  redis.call('ZCARD', expiry)
  if size == 0 or stored == 0 or size + stored > HEAL_LIMIT then
    redis.call('UNLINK', index, values, expiry)
    if tagging then clear_tags(tags, tagged) end
    dropped_all = true
  else
    local present, both = {}, {}
    local fields = redis.call('HKEYS', values)
    for _, f in ipairs(fields) do present[f] = true end
    local members = is_set and redis.call('SMEMBERS', index) or redis.call('ZRANGE', index, 0, -1)
    for _, m in ipairs(members) do
      if present[m] then
        both[m] = true
      else
        redis.call(is_set and 'SREM' or 'ZREM', index, m)
        redis.call('ZREM', expiry, m)
        if tagging then untag(tags, tagged, m) end
        if near then changed[#changed + 1] = m end
      end
    end
    for _, f in ipairs(fields) do
      if not both[f] then
        redis.call('HDEL', values, f)
        redis.call('ZREM', expiry, f)
        if tagging then untag(tags, tagged, f) end
        if near then changed[#changed + 1] = f end
      end
    end
  end
  size = redis.call(is_set and 'SCARD' or 'ZCARD', index)
end
if tlfu and size == 0 then
  -- An empty structure starts with a fresh sketch, as the embedded store's (which forgets an
  -- empty structure whole).
  redis.call('DEL', sketch)
  st = tlfu_load(sketch, shape, '')
end
local exists = redis.call('HEXISTS', values, member) == 1
if exists then
  if tlfu then
    tlfu_touch(index, st, member)
    tlfu_save(st)
  else
    touch(ARGV[5], index, member, now_arg)
  end
else
  if size >= maxsize then
    -- Expired entries go before any live entry is evicted (an expiry time whose entry is gone
    -- is dropped without being counted).
    local dead = redis.call('ZRANGEBYSCORE', expiry, '-inf', now_arg, 'LIMIT', '0', '128')
    if #dead > 0 then
      redis.call(is_set and 'SREM' or 'ZREM', index, unpack(dead))
      reclaimed = redis.call('HDEL', values, unpack(dead))
      redis.call('ZREM', expiry, unpack(dead))
      if tagging then
        for _, m in ipairs(dead) do untag(tags, tagged, m) end
      end
      if near then
        for _, m in ipairs(dead) do changed[#changed + 1] = m end
      end
      size = redis.call(is_set and 'SCARD' or 'ZCARD', index)
    end
  end
  -- The policy's victims leave the index first; then each takes with it its entry, its expiry
  -- time, its tags, and near copies (announced). One place for every policy's eviction, so
  -- that none forgets a part (TinyLfu's once forgot the announcement). A loop over a list
  -- rather than a local function: a closure is made again on every call, with an upvalue
  -- for each local it uses, which costs more than the list.
  local victims
  if tlfu then
    victims = tlfu_insert(index, st, maxsize, member, size)
    tlfu_save(st)
  else
    victims = {}
    while size >= maxsize do
      local out
      if victim == 'random' then
        out = redis.call('SPOP', index)
      elseif victim == 'max' then
        out = redis.call('ZPOPMAX', index)[1]
      else
        out = redis.call('ZPOPMIN', index)[1]
      end
      if not out then break end
      victims[#victims + 1] = out
      size = size - 1
    end
  end
  for _, out in ipairs(victims) do
    evicted = evicted + redis.call('HDEL', values, out)
    redis.call('ZREM', expiry, out)
    if tagging then untag(tags, tagged, out) end
    if near then changed[#changed + 1] = out end
  end
  if tlfu then
    -- inserted above
  elseif is_set then
    redis.call('SADD', index, member)
  else
    local score = '1'
    if insert == 'time' then
      score = now_arg
    elseif insert == 'counter' then
      local top = redis.call('ZREVRANGE', index, '0', '0', 'WITHSCORES')[2]
      score = string.format('%d', (tonumber(top) or 0) + 1)
    end
    redis.call('ZADD', index, score, member)
  end
end

-- The entry is deleted at keep_until: its entry TTL, or later when a fallback is kept.
-- Without an entry TTL, keep ms (max_stale) is its lifetime: no value older than max_stale is
-- ever served. (Durations arrive in whole ms of at most 100 years, so these sums of
-- microseconds stay exact in doubles.)
local expire, keep = 0, 0
local keep_ms = tonumber(ARGV[11])
if entry_ttl > 0 then
  expire = now + entry_ttl * 1000
  keep = expire
  if keep_ms > entry_ttl then keep = now + keep_ms * 1000 end
elseif keep_ms > 0 then
  expire = now + keep_ms * 1000
  keep = expire
end
if keep > 0 then
  redis.call('ZADD', expiry, string.format('%d', keep), member) -- a string, as now_arg
elseif exists then
  redis.call('ZREM', expiry, member) -- an overwrite without TTL drops an earlier one
end
local refresh_ms = tonumber(ARGV[15] or 0)
if refresh_ms > 0 then
  redis.call('HSET', values, member, '\2' .. string.sub(ARGV[2], 2, 2)
    .. struct.pack('>I8I8I8I8', now, expire, keep, now + refresh_ms * 1000) .. ARGV[3])
else
  redis.call('HSET', values, member, ARGV[2] .. struct.pack('>I8I8I8', now, expire, keep) .. ARGV[3])
end
if tagging then
  untag(tags, tagged, member)
  -- The write time first: tags are the entry's only while it is the entry written then.
  redis.call('HSET', tags, member, struct.pack('>I8', now) .. new_tags)
  do
    local pos = 1
    while pos + 3 <= #new_tags do
      local n = struct.unpack('>I4', new_tags, pos)
      redis.call('ZADD', tagged, 0, string.sub(new_tags, pos, pos + 3 + n) .. member)
      pos = pos + 4 + n
    end
  end
  -- Bookkeeping of entries deleted without it (see drop_orphans) is bounded: once the tagged
  -- members outnumber the entries by far, it goes (amortized, one sweep per that many puts).
  if redis.call('HLEN', tags) > 2 * redis.call('HLEN', values) + 16 then
    drop_orphans(values, tags, tagged)
  end
end
if ARGV[12] ~= '' and redis.call('GET', lease_key) == ARGV[12] then redis.call('DEL', lease_key) end

if ttl > 0 then
  if ARGV[9] == '1' then
    slide(index, values, expiry, ttl)
  else
    -- Fixed lifetime: set once, when a key is created, from the index's remaining time.
    local left = redis.call('PTTL', index)
    if left < 0 then left = ttl end
    for _, key in ipairs({index, values, expiry}) do
      if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, left) end
    end
  end
  if tlfu then
    -- The sketch lives and dies with the index.
    local left = redis.call('PTTL', index)
    if left > 0 then
      redis.call('PEXPIRE', sketch, left)
    end
  end
end
if near then
  if dropped_all then publish(ARGV[16], '*') else announce(ARGV[16], changed) end
end
return {evicted, reclaimed}
