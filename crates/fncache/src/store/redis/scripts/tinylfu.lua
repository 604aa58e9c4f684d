-- tinylfu.lua: Policy::TinyLfu (W-TinyLFU), prepended to get.lua and put.lua for that policy
-- only. store/memory/tinylfu.rs is the model the property test holds these rules to: every
-- step here has its line there.
--
-- Keys of the structure besides index, values and expiry:
-- * the index (:0) holds three segments in one sorted set, score = segment x 2^50 + use
--   counter (window 0, probation 1, protected 2; exact in doubles): a segment's oldest is one
--   ZRANGEBYSCORE over its range, its size one ZCOUNT;
-- * the sketch (:5): a string of 4-bit counters (BITFIELD u4 #i), blocks x 64 bytes, grown as
--   counters are used. A member's counters come from its own bytes (BLAKE3 output), see
--   TinyLfuShape in policy.rs: bytes 1-4 (big-endian) modulo blocks pick a block of 128
--   counters, the low 5 bits of bytes 5 to 8 one counter in each of its 4 rows of 32;
-- * the meta hash (:6): c the use counter of the scores, n the uses counted in this sample,
--   e how many samples have ended (each halves every counter), s<i> the sample count up to
--   which slice i of the sketch (16 blocks, 1024 bytes) has been halved; and the hill
--   climber's: h and m the hits and inserts of this sample, r the previous sample's hits, t
--   the next step, w and p the window's and protected's sizes (absent: the shape's).
--   A script reads it once (tlfu_load, with the slice of the member's counters), works on the
--   table `st`, and writes it back once (tlfu_save): every field is an integer below 2^53,
--   which Redis writes and Lua reads back exactly.
-- The shape {window, protected, blocks, sample, step, aging} is computed by the client
-- (TinyLfuShape), so both stores use the same integers, and arrives in the rule word:
-- 'tlfu:window:protected:blocks:sample:step:aging' (tlfu_shape).

local SEG = 1125899906842624 -- 2^50
local SLICE_BLOCKS = 16
-- The most entries a resize of the window moves at once (Caffeine's queue transfer threshold).
local MOVES_MAX = 1000

local function tlfu_shape(word)
  local shape = {}
  for n in string.gmatch(word, '%d+') do shape[#shape + 1] = tonumber(n) end
  return shape
end

local function tlfu_counters(member, blocks)
  local b1, b2, b3, b4, r1, r2, r3, r4 = string.byte(member, 1, 8)
  local block = (((b1 * 256 + b2) * 256 + b3) * 256 + b4) % blocks
  local base = block * 128
  return block, {base + r1 % 32, base + 32 + r2 % 32, base + 64 + r3 % 32, base + 96 + r4 % 32}
end

-- The bookkeeping of the meta hash, with the slice of `member`'s counters, in one HMGET.
-- shape: {window, protected, blocks, sample, step, aging}.
local function tlfu_load(meta, shape, member)
  local slice = math.floor(tlfu_counters(member, shape[3]) / SLICE_BLOCKS)
  local v = redis.call('HMGET', meta, 'c', 'n', 'e', 'h', 'm', 'r', 't', 'w', 'p', 's' .. slice)
  local st = {
    meta = meta, shape = shape, seen = {},
    c = tonumber(v[1]) or 0, n = tonumber(v[2]) or 0, e = tonumber(v[3]) or 0,
    h = tonumber(v[4]) or 0, m = tonumber(v[5]) or 0, r = tonumber(v[6]) or 0,
    t = tonumber(v[7]) or -shape[5], w = tonumber(v[8]) or shape[1], p = tonumber(v[9]) or shape[2],
  }
  st.seen[slice] = tonumber(v[10]) or 0
  st.old = {st.c, st.n, st.e, st.h, st.m, st.r, st.t, st.w, st.p}
  return st
end

-- Writes back the fields that changed (a hit changes two or three).
local FIELDS = {'c', 'n', 'e', 'h', 'm', 'r', 't', 'w', 'p'}
local function tlfu_save(st)
  local args = {}
  for i, field in ipairs(FIELDS) do
    if st[field] ~= st.old[i] then
      args[#args + 1] = field
      args[#args + 1] = st[field]
    end
  end
  if #args > 0 then redis.call('HSET', st.meta, unpack(args)) end
end

-- Aging, lazily: the slice of `block` is halved as many times as samples ended since it was
-- last used (at most 4: a 4-bit counter is 0 by then), before any of its counters is read or
-- counted. Every counter reads as if the whole sketch had been halved at the end of each
-- sample, which on a large sketch would block the server for milliseconds.
local function tlfu_age(sketch, st, block)
  if st.e == 0 then return end
  local slice = math.floor(block / SLICE_BLOCKS)
  local seen = st.seen[slice]
  if seen == nil then seen = tonumber(redis.call('HGET', st.meta, 's' .. slice) or '0') end
  st.seen[slice] = seen
  if seen >= st.e then return end
  local from = slice * SLICE_BLOCKS * 64
  local bytes = redis.call('GETRANGE', sketch, from, from + SLICE_BLOCKS * 64 - 1)
  if #bytes > 0 then
    local times, out = math.min(st.e - seen, 4), {}
    for i = 1, #bytes do
      local b = string.byte(bytes, i)
      for _ = 1, times do b = bit.band(bit.rshift(b, 1), 0x77) end
      out[i] = string.char(b)
    end
    redis.call('SETRANGE', sketch, from, table.concat(out))
  end
  redis.call('HSET', st.meta, 's' .. slice, st.e)
  st.seen[slice] = st.e
end

-- The estimated frequency of `member`: the least of its counters.
local function tlfu_frequency(sketch, st, member)
  local block, c = tlfu_counters(member, st.shape[3])
  tlfu_age(sketch, st, block)
  local v = redis.call('BITFIELD', sketch, 'GET', 'u4', '#' .. c[1], 'GET', 'u4', '#' .. c[2],
    'GET', 'u4', '#' .. c[3], 'GET', 'u4', '#' .. c[4])
  return math.min(v[1], v[2], v[3], v[4])
end

-- Counts one use of `member`: each of its counters below 15 grows by one; when one did, the
-- use counts, and after `aging` of them every counter is halved (see tlfu_age), and the count
-- too.
local function tlfu_increment(sketch, st, member)
  local block, c = tlfu_counters(member, st.shape[3])
  tlfu_age(sketch, st, block)
  local v = redis.call('BITFIELD', sketch,
    'GET', 'u4', '#' .. c[1], 'GET', 'u4', '#' .. c[2], 'GET', 'u4', '#' .. c[3], 'GET', 'u4', '#' .. c[4],
    'OVERFLOW', 'SAT', 'INCRBY', 'u4', '#' .. c[1], 1, 'INCRBY', 'u4', '#' .. c[2], 1,
    'INCRBY', 'u4', '#' .. c[3], 1, 'INCRBY', 'u4', '#' .. c[4], 1)
  if v[1] < 15 or v[2] < 15 or v[3] < 15 or v[4] < 15 then
    st.n = st.n + 1
    if st.n >= st.shape[6] then
      st.n = math.floor(st.n / 2)
      st.e = st.e + 1
    end
  end
end

-- Caffeine's hill climber, in integers: counts a lookup (a hit, or the insert after a miss);
-- at the end of a sample of `sample` lookups, compares its hits with the previous sample's,
-- keeps moving the window's size in the same direction while the hit rate does not fall and
-- turns back when it does; the step decays by 2% a sample and starts over at `step` when the
-- hit rate moves by 5 points or more. Returns the entries the window grew by (negative: shrank
-- by), for tlfu_resize.
local function tlfu_climb(st, hit)
  if hit then st.h = st.h + 1 else st.m = st.m + 1 end
  local shape = st.shape
  if st.h + st.m < shape[4] then return 0 end
  local change, amount, step = st.h - st.r, st.t, st.t
  if change < 0 then amount = -step end
  if math.abs(change) * 20 >= shape[4] then
    if amount >= 0 then step = shape[5] else step = -shape[5] end
  else
    -- 98% of it, truncated toward zero (exact: amount x 98 is an integer below 2^53).
    step = amount * 98 / 100
    if step < 0 then step = math.ceil(step) else step = math.floor(step) end
  end
  st.r, st.t, st.h, st.m = st.h, step, 0, 0
  if amount > 0 then
    local quota = math.min(amount, st.p, MOVES_MAX)
    st.p, st.w = st.p - quota, st.w + quota
    return quota
  end
  local quota = math.min(-amount, math.max(st.w - 1, 0), MOVES_MAX)
  st.w, st.p = st.w - quota, st.p + quota
  return -quota
end

-- Caffeine's random admission (1 in 128) of a warm candidate (a frequency of at least 6),
-- deterministic: the counted uses of the sketch plus the candidate's ninth byte, modulo 128
-- (as `lucky` in tinylfu.rs).
local function tlfu_lucky(st, candidate)
  return (st.n + string.byte(candidate, 9)) % 128 == 0
end

local function tlfu_oldest(index, segment)
  return redis.call('ZRANGEBYSCORE', index, segment * SEG, (segment + 1) * SEG - 1, 'LIMIT', 0, 1)[1]
end

local function tlfu_len(index, segment)
  return redis.call('ZCOUNT', index, segment * SEG, (segment + 1) * SEG - 1)
end

-- Makes `member` the newest of `segment`.
local function tlfu_move(index, st, member, segment)
  st.c = st.c + 1
  redis.call('ZADD', index, segment * SEG + st.c, member)
end

-- After the climber moved the window's size by `by` entries: as Caffeine, a larger window takes
-- that many of the main space's oldest entries (probation's first), protected's overflow goes
-- back to probation, and a smaller window gives its oldest to probation.
local function tlfu_resize(index, st, by)
  if by > 0 then
    for _ = 1, by do
      local oldest = tlfu_oldest(index, 1) or tlfu_oldest(index, 2)
      if not oldest then break end
      tlfu_move(index, st, oldest, 0)
    end
    while tlfu_len(index, 2) > st.p do
      local oldest = tlfu_oldest(index, 2)
      if not oldest then break end
      tlfu_move(index, st, oldest, 1)
    end
  elseif by < 0 then
    while tlfu_len(index, 0) > st.w do
      local oldest = tlfu_oldest(index, 0)
      if not oldest then break end
      tlfu_move(index, st, oldest, 1)
    end
  end
end

-- A use of `member` (present): a hit (after tlfu_climb), or an overwrite.
local function tlfu_touch(index, sketch, st, member)
  tlfu_increment(sketch, st, member)
  local segment = math.floor(tonumber(redis.call('ZSCORE', index, member) or '0') / SEG)
  if segment == 1 then
    -- Used again on probation: protected, whose oldest go back to probation while it is over
    -- its size.
    tlfu_move(index, st, member, 2)
    while tlfu_len(index, 2) > st.p do
      local demoted = tlfu_oldest(index, 2)
      if not demoted then break end
      tlfu_move(index, st, demoted, 1)
    end
  else
    tlfu_move(index, st, member, segment)
  end
end

-- Inserts `member` (new) into the window, moves the window's overflow to probation, and
-- evicts from the index down to maxsize: the first entry moved out of the window (the
-- candidate) against probation's oldest (the victim), the one the sketch says is used less
-- often leaving (a tie keeps the victim, but a warm candidate wins one duel in 128: see
-- tlfu_lucky). Returns the evicted members (their entries are the
-- caller's to delete).
local function tlfu_insert(index, sketch, st, maxsize, member)
  tlfu_resize(index, st, tlfu_climb(st, false))
  tlfu_increment(sketch, st, member)
  tlfu_move(index, st, member, 0)
  local candidate
  while tlfu_len(index, 0) > st.w do
    local oldest = tlfu_oldest(index, 0)
    if not oldest then break end
    tlfu_move(index, st, oldest, 1)
    candidate = candidate or oldest
  end
  local out = {}
  local size = redis.call('ZCARD', index)
  while size > maxsize do
    local victim, loser = tlfu_oldest(index, 1), nil
    if candidate and victim and candidate ~= victim then
      local fc = tlfu_frequency(sketch, st, candidate)
      if fc > tlfu_frequency(sketch, st, victim) or (fc >= 6 and tlfu_lucky(st, candidate)) then
        loser = victim
      else
        loser = candidate
      end
    elseif candidate then
      loser = candidate
    else
      loser = victim or tlfu_oldest(index, 2) or tlfu_oldest(index, 0)
      if not loser then break end
    end
    candidate = nil
    redis.call('ZREM', index, loser)
    out[#out + 1] = loser
    size = size - 1
  end
  return out
end
