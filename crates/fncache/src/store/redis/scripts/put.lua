-- put.lua: store one entry, evicting by policy when the index is full, atomically.
-- KEYS: index, values, expiry
-- ARGV: member, envelope head (format+codec, 2 bytes), payload,
--       insert rule (counter|time|one|set), touch rule (none|counter|time|incr),
--       victim rule (min|max|random), maxsize, structure ttl ms (0 = none),
--       slide ('1' = every put renews the structure ttl), entry ttl ms (0 = none)
-- Returns {evicted, reclaimed}: entries evicted by policy, expired entries reclaimed.
local index, values, expiry = KEYS[1], KEYS[2], KEYS[3]
local member, head, payload = ARGV[1], ARGV[2], ARGV[3]
local insert, rule, victim = ARGV[4], ARGV[5], ARGV[6]
local maxsize, ttl, slide, entry_ttl = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9] == '1', tonumber(ARGV[10])
local kind = 'zset'
if insert == 'set' then kind = 'set' end

-- Read every key first: a key of the wrong type fails here, before anything is written.
local exists = rcall(values, 'HEXISTS', values, member) == 1
local size = index_card(kind, index)
local with_expiry = rcall(expiry, 'ZCARD', expiry)

local evicted, reclaimed = 0, 0
if exists then
  touch(rule, index, member)
else
  if size >= maxsize and with_expiry > 0 then
    -- Expired entries go before any live entry is evicted.
    local dead = redis.call('ZRANGEBYSCORE', expiry, '-inf', now_us(), 'LIMIT', 0, 128)
    for _, m in ipairs(dead) do
      remove_entry(kind, index, values, expiry, m)
      reclaimed = reclaimed + 1
    end
    size = index_card(kind, index)
  end
  while size >= maxsize do
    local out
    if victim == 'random' then
      out = redis.call('SPOP', index)
    else
      local popped
      if victim == 'max' then popped = redis.call('ZPOPMAX', index) else popped = redis.call('ZPOPMIN', index) end
      out = popped[1]
    end
    if not out then break end
    redis.call('HDEL', values, out)
    redis.call('ZREM', expiry, out)
    evicted = evicted + 1
    size = size - 1
  end
  if kind == 'set' then
    redis.call('SADD', index, member)
  else
    redis.call('ZADD', index, fresh_score(insert, index), member)
  end
end

local expire = 0
if entry_ttl > 0 then
  expire = now_us() + entry_ttl * 1000
  redis.call('ZADD', expiry, expire, member)
elseif with_expiry > 0 then
  redis.call('ZREM', expiry, member)
end
redis.call('HSET', values, member, head .. struct.pack('>I8I8', now_us(), expire) .. payload)

if ttl > 0 then
  if slide then
    redis.call('PEXPIRE', index, ttl)
    redis.call('PEXPIRE', values, ttl)
    redis.call('PEXPIRE', expiry, ttl)
  else
    -- Fixed lifetime: set once, when a key is created, from the index's remaining time.
    local left = redis.call('PTTL', index)
    if left < 0 then left = ttl end
    for _, key in ipairs({index, values, expiry}) do
      if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, left) end
    end
  end
end
return {evicted, reclaimed}
