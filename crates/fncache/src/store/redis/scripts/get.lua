-- get.lua: look one entry up, record the use, and (when asked) take the key's lease,
-- atomically. The hit path, so it stands alone (no prelude: every local function is a closure
-- created per call) and a fresh hit runs two commands, HGET and the touch. What used to cost
-- more per hit is decided by the client instead:
-- * the 'time' rule scores a use with server TIME, as puts do, so uses are ordered exactly
--   across processes; only under touch_batch (whose recorded uses are scored by the caller's
--   clock anyway) does the caller send its clock (ARGV[5], microseconds), applied with ZADD GT
--   so that a late script never moves a score back; freshness always uses server time;
-- * the structure TTL is renewed only when the caller asks (ARGV[4] > 0): each client process
--   asks at most once per step (1% of the TTL, at most a second) per structure, instead of the
--   script reading PTTL on every hit.
-- KEYS: index, values, expiry, and the lease only when one is asked for (lease ms > 0), then
--       the tags hash only for a tagged call (asking for the server's TIME, below), then
--       for the tlfu rule (Policy::TinyLfu) the sketch key, last (see tinylfu.lua)
-- ARGV: member, touch rule (none|counter|time|incr, or for Policy::TinyLfu 'tlfu:' and its
--       shape, see tinylfu.lua), index kind (zset|set),
--       ttl ms to renew the structure with ('0' = not this time), touch score (caller's
--       microseconds, for the 'time' rule under touch_batch; '0' = server TIME),
--       then, only when not zero: refresh after ms (0 = never stale), lease ms (0 = take no
--       lease), lease token, and '1' to be told the server's TIME (a tagged call: its put
--       compares it with the time of the structure's last tag invalidation)
-- Returns the bare entry for a fresh hit (the hot path: no table to build), else
-- {state, lease, entry} and, when asked, the server's TIME in microseconds:
--   state 0 miss, 2 stale (older than refresh-after: served, worth refreshing),
--         3 expired (past its entry TTL, kept only as a fallback: recompute);
--   lease 0 not asked (fresh hits never ask), 1 the caller holds it, 2 another caller does,
--         3 held back after a failed recomputation (serve the fallback, do not retry).
-- A stored entry is
--   format (1) | codec (1) | written_at_us (8) | expire_at_us (8) | keep_until_us (8) | payload
-- (see prelude.lua), or of format 2 with refresh_at_us (8) before the payload.
local index, values, member = KEYS[1], KEYS[2], ARGV[1]

-- `now`: server time in microseconds, once read; `clock`: the TIME reply the touch read
-- without making it a number (see there), for the freshness check should it need one.
local state, now, clock = 1, nil, nil
local entry = redis.call('HGET', values, member)
if not entry then
  state = 0
elseif #entry >= 26 then
  -- An entry without a per-entry TTL has expire_at = keep_until = 0: one unpack tells.
  local expire_at = struct.unpack('>I8', entry, 11)
  if expire_at ~= 0 then
    local t = redis.call('TIME')
    now = t[1] * 1000000 + t[2]
    local keep_until = struct.unpack('>I8', entry, 19)
    if keep_until ~= 0 and keep_until <= now then
      if ARGV[3] == 'set' then redis.call('SREM', index, member) else redis.call('ZREM', index, member) end
      redis.call('ZREM', KEYS[3], member)
      redis.call('HDEL', values, member)
      state, entry = 0, false
    elseif expire_at <= now then
      state = 3
    end
  end
end

if state == 1 then
  local rule = ARGV[2]
  if rule == 'time' then
    if ARGV[5] == '0' then
      -- The score goes as a string made here: redis.call would format a number with '%.17g',
      -- which costs more. (Microseconds since 1970 stay below 2^53: exact either way.)
      local score
      if now then
        score = string.format('%d', now)
      else
        clock = redis.call('TIME')
        score = string.format('%d%06d', clock[1], clock[2])
      end
      redis.call('ZADD', index, score, member)
    else
      redis.call('ZADD', index, 'GT', ARGV[5], member)
    end
  elseif rule == 'counter' then
    -- Arguments as strings here too (counters are integers, far below 2^53).
    local top = redis.call('ZREVRANGE', index, '0', '0', 'WITHSCORES')
    if top[1] ~= member then
      redis.call('ZADD', index, string.format('%d', (tonumber(top[2]) or 0) + 1), member)
    end
  elseif rule == 'incr' then
    redis.call('ZINCRBY', index, '1', member)
  elseif string.sub(rule, 1, 5) == 'tlfu:' then
    -- Policy::TinyLfu: this script has tinylfu.lua prepended; its sketch key comes last in
    -- KEYS, its shape in the rule word.
    local st = tlfu_load(KEYS[#KEYS], tlfu_shape(rule))
    tlfu_resize(index, st, tlfu_climb(st, true))
    tlfu_touch(index, st, member, true)
    tlfu_save(st)
  end
  local ttl = ARGV[4]
  if ttl ~= '0' then
    redis.call('PEXPIRE', index, ttl)
    redis.call('PEXPIRE', values, ttl)
    redis.call('PEXPIRE', KEYS[3], ttl)
    if string.sub(rule, 1, 5) == 'tlfu:' then
      redis.call('PEXPIRE', KEYS[#KEYS], ttl)
    end
  end
  -- An entry with a refresh time of its own (format 2) goes stale by it, whatever the
  -- caller's refresh-after.
  local refresh_at = 0
  if string.byte(entry, 1) == 2 and #entry >= 34 then refresh_at = struct.unpack('>I8', entry, 27) end
  local refresh_after = tonumber(ARGV[6] or 0)
  if refresh_at == 0 and (refresh_after == 0 or #entry < 26) then return entry end
  if not now then
    local t = clock or redis.call('TIME')
    now = t[1] * 1000000 + t[2]
  end
  if refresh_at ~= 0 then
    if now < refresh_at then return entry end
  elseif now - struct.unpack('>I8', entry, 3) < refresh_after * 1000 then
    return entry
  end
  state = 2
end

-- Not a fresh hit: take the lease when asked (`SET NX PX` with the caller's random token):
-- 1 when the caller holds it (now or already), 2 when another caller does, 3 when it is held
-- back after a failed recomputation (its value is '!' and the failed caller's token).
local lease_ms, lease = tonumber(ARGV[7] or 0), 0
if lease_ms > 0 then
  local token = ARGV[8]
  if redis.call('SET', KEYS[4], token, 'NX', 'PX', lease_ms) then
    lease = 1
  else
    local holder = redis.call('GET', KEYS[4])
    if holder == token then
      lease = 1
    elseif holder and string.sub(holder, 1, 1) == '!' then
      lease = 3
    else
      lease = 2
    end
  end
end
if ARGV[9] == '1' then
  -- A tagged call computes from here on, and its put compares this time with the time of
  -- the structure's last tag invalidation (`g` in the tags hash, see put.lua). A structure
  -- with no key at all would be one no invalidation finds (it scans for keys) and stamps:
  -- `g` makes it one from now on, so an invalidation that runs before the put is seen by it.
  redis.call('HSETNX', KEYS[lease_ms > 0 and 5 or 4], 'g', 0)
  -- Read last: whatever the caller computes from here on began after this time.
  local t = redis.call('TIME')
  return {state, lease, entry or false, t[1] * 1000000 + t[2]}
end
return {state, lease, entry or false}
