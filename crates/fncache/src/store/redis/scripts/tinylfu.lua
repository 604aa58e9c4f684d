-- tinylfu.lua: Policy::TinyLfu (W-TinyLFU), prepended to get.lua, put.lua and uses_tlfu.lua
-- for that policy only. store/memory/tinylfu.rs is the model the property test holds these
-- rules to: every step here has its line there.
--
-- Keys of the structure besides index, values and expiry:
-- * the index (:0) holds three segments in one sorted set, score = segment x 2^50 + use
--   counter (window 0, probation 1, protected 2; exact in doubles): a segment's oldest is one
--   ZRANGEBYSCORE over its range, its size one ZCOUNT;
-- * the sketch (:5), one string that holds the bookkeeping too (it was a hash, :6, of its own):
--   - a header of 128 bytes, of which 88 are used: eleven big-endian signed 64-bit fields (as
--     BITFIELD i64 #0 to #10 reads them) c the use counter of the scores, n the uses counted in
--     this sample, e how many samples have ended (each halves every counter); the
--     climber's h and m the hits and inserts of this sample, r the previous sample's hits, t
--     the next step, w and p the window's and protected's sizes; i, 1 once t, w and p are
--     stored (before: the shape's); and x the hits of this sample that found their entry in
--     the window (a header of 80 bytes, written before x existed, reads x as 0);
--   - then the slices of 16 blocks, each 8 bytes (the sample count up to which the slice has
--     been halved, an i64) and 16 blocks of 64 bytes of 4-bit counters. A member's counters
--     come from its own bytes (BLAKE3 output), see TinyLfuShape in policy.rs: bytes 1-4
--     (big-endian) modulo blocks pick a block of 128 counters, the low 5 bits of bytes 5 to 8
--     one counter in each of its 4 rows of 32.
--   The string grows as slices are used: at most 128 + blocks x 64 + 8 per 16 blocks bytes.
-- * the meta key (:6) of the earlier layout is neither written nor named by these scripts;
--   purge.lua still unlinks it.
-- A script reads the header once (tlfu_load: one GETRANGE), works on the table `st`, and
-- writes the header back once when it changed (tlfu_save: one SETRANGE); a use is counted with
-- its slice's aging count read in the same BITFIELD (tlfu_increment). Every field is an integer
-- below 2^53, exact in Lua's doubles.
-- What a script costs here follows the arguments and reply elements of its calls (and number
-- arguments, which redis.call converts with '%.17g' on Redis 7.0) at least as much as their
-- number: a hit is HGET, GETRANGE, BITFIELD (5 subcommands), ZSCORE, ZADD, SETRANGE.
-- Measured by the instructions the server runs per call (callgrind, scripts/tlfu-cost, see
-- docs/hit-ratio.md): what is here because it counted says so where it is; moving the put-only
-- helpers out of the hit script saved less than 1% and is not done.
-- The shape {window, protected, blocks, sample, step, aging} is computed by the client
-- (TinyLfuShape), so both stores use the same integers, and arrives in the rule word: 'tlfu:'
-- and the six as big-endian u64 (TinyLfuShape::script_word, tlfu_shape).

-- The numbers of the layout above are written where they are used (2^50 and 8 + 16 * 64 are
-- folded by the compiler), not kept in locals: each local a function uses is an upvalue, made
-- again on every call, and eight of them cost 3% of a hit's instructions. So: a segment's
-- scores start at segment x 2^50; the header is 128 bytes, of which 88 are used; a slice of 16
-- blocks spans 8 + 16 * 64 bytes.

local function tlfu_shape(word)
  -- Binary, in one struct.unpack: decimal fields parsed with a pattern and tonumber cost 8% of
  -- a hit's instructions. (The last value unpack returns, the next position, is not used.)
  return {struct.unpack('>I8I8I8I8I8I8', word, 6)}
end

-- The slice of `member`'s block, the bit offset of the slice's aging count and those of the
-- member's 4 counters, as decimal strings: string.format('%d') costs less than the conversion
-- redis.call makes of a number argument ('%.17g' on Redis 7.0) or tostring (6% of a hit).
local function tlfu_counters(member, blocks)
  local b1, b2, b3, b4, r1, r2, r3, r4 = string.byte(member, 1, 8)
  local block = (((b1 * 256 + b2) * 256 + b3) * 256 + b4) % blocks
  local slice = math.floor(block / 16)
  -- A slice's byte offset: the header, then the slices before it; then its aging count, then
  -- its blocks.
  local at = (128 + slice * (8 + 16 * 64)) * 8
  local base = at + (8 + (block % 16) * 64) * 8
  return slice, string.format('%d', at),
    string.format('%d', base + r1 % 32 * 4),
    string.format('%d', base + (32 + r2 % 32) * 4),
    string.format('%d', base + (64 + r3 % 32) * 4),
    string.format('%d', base + (96 + r4 % 32) * 4)
end

-- The header as one string (GETRANGE and SETRANGE of 88 bytes, struct.unpack and pack): a
-- script's cost grows with the arguments and reply elements of its calls more than with their
-- number, so this beats a field per argument (HMGET, HSET, BITFIELD GET i64). Eleven
-- big-endian i64, '>i8i8i8i8i8i8i8i8i8i8i8'.

-- The bookkeeping: the state `st` from the header, read in one GETRANGE unless given ('' for
-- a structure whose sketch was just deleted). 88 bytes; shorter, or '' for an absent sketch,
-- reads as zeros (made only then: a string.rep on every call costs 3% of a hit).
-- shape: {window, protected, blocks, sample, step, aging}.
local function tlfu_load(sketch, shape, header)
  -- Bytes 0 to 87, as strings (see tlfu_counters).
  header = header or redis.call('GETRANGE', sketch, '0', '87')
  if #header < 88 then header = string.sub(header .. string.rep('\0', 88), 1, 88) end
  local c, n, e, h, m, r, t, w, p, i, x = struct.unpack('>i8i8i8i8i8i8i8i8i8i8i8', header)
  local st = {
    sketch = sketch, shape = shape, header = header,
    c = c, n = n, e = e, h = h, m = m, r = r, t = t, w = w, p = p, i = i, x = x,
  }
  if i == 0 then
    st.t, st.w, st.p, st.i = -shape[5], shape[1], shape[2], 1
  end
  return st
end

-- Writes the header back when a field changed (a hit changes c and h at least). + 0: the
-- climber's step may be -0 (math.ceil of a small negative); the header stores 0.
local function tlfu_save(st)
  local header = struct.pack('>i8i8i8i8i8i8i8i8i8i8i8', st.c + 0, st.n + 0, st.e + 0,
    st.h + 0, st.m + 0, st.r + 0, st.t + 0, st.w + 0, st.p + 0, st.i + 0, st.x + 0)
  if header ~= st.header then redis.call('SETRANGE', st.sketch, '0', header) end
end

-- Aging, lazily: a slice is halved as many times as samples ended since it was last used (at
-- most 4: a 4-bit counter is 0 by then), before any of its counters is read or counted. Every
-- counter reads as if the whole sketch had been halved at the end of each sample, which on a
-- large sketch would block the server for milliseconds. `seen` is the slice's aging count, read
-- by the caller in the same BITFIELD as the counters (which it reads again once halved).
local function tlfu_age(st, slice, seen)
  if seen >= st.e then return end
  local at = 128 + slice * (8 + 16 * 64)
  local bytes = redis.call('GETRANGE', st.sketch, at + 8, at + 8 + 16 * 64 - 1)
  local times, out = math.min(st.e - seen, 4), {}
  for i = 1, #bytes do
    local b = string.byte(bytes, i)
    for _ = 1, times do b = bit.band(bit.rshift(b, 1), 0x77) end
    out[i] = string.char(b)
  end
  -- The slice's aging count (big-endian, as BITFIELD i64 reads it) and its halved counters.
  redis.call('SETRANGE', st.sketch, at, struct.pack('>I8', st.e) .. table.concat(out))
end

-- Counts one use of `member`: each of its counters below 15 grows by one; when one did, the
-- use counts, and after `aging` of them every counter is halved (see tlfu_age), and the count
-- too. One BITFIELD reads the slice's aging count and increments the 4 counters with OVERFLOW
-- FAIL: a counter at 15 stays 15 (as SAT would leave it) and replies nil, so the reply tells
-- which were below 15 without 4 GETs first (the hit's costliest call, about 1.5 us less). If the
-- slice had to be halved first (a sample ended since it was last used), the counters are put
-- back (each was its reply minus one, or 15 for nil), halved, and counted again.
local function tlfu_increment(st, member)
  local slice, at, c1, c2, c3, c4 = tlfu_counters(member, st.shape[3])
  local v = redis.call('BITFIELD', st.sketch, 'GET', 'i64', at, 'OVERFLOW', 'FAIL',
    'INCRBY', 'u4', c1, '1', 'INCRBY', 'u4', c2, '1', 'INCRBY', 'u4', c3, '1',
    'INCRBY', 'u4', c4, '1')
  if v[1] < st.e then
    redis.call('BITFIELD', st.sketch, 'SET', 'u4', c1, v[2] and v[2] - 1 or 15,
      'SET', 'u4', c2, v[3] and v[3] - 1 or 15, 'SET', 'u4', c3, v[4] and v[4] - 1 or 15,
      'SET', 'u4', c4, v[5] and v[5] - 1 or 15)
    tlfu_age(st, slice, v[1])
    -- The same subcommands, so that the reply keeps its places.
    v = redis.call('BITFIELD', st.sketch, 'GET', 'i64', at, 'OVERFLOW', 'FAIL',
      'INCRBY', 'u4', c1, '1', 'INCRBY', 'u4', c2, '1', 'INCRBY', 'u4', c3, '1',
      'INCRBY', 'u4', c4, '1')
  end
  if v[2] or v[3] or v[4] or v[5] then
    st.n = st.n + 1
    if st.n >= st.shape[6] then
      st.n = math.floor(st.n / 2)
      st.e = st.e + 1
    end
  end
end

-- The window's climber, in integers: counts a lookup (a hit, or the insert after a miss;
-- tlfu_touch counts the hits found in the window, x); at the end of a sample of `sample`
-- lookups, grows the window by the step when its hits per entry are more than two thirds of
-- the main space's per entry of protected's size (x * p * 3 > (h - x) * w * 2, in doubles:
-- tinylfu.rs computes it with the same operations in the same order), and shrinks it; the
-- step decays by 2% a sample and starts over at `step` when the hit rate moves by 5 points
-- or more. Returns the entries the window grew by (negative: shrank by), for tlfu_resize.
local function tlfu_climb(st, hit)
  if hit then st.h = st.h + 1 else st.m = st.m + 1 end
  local shape = st.shape
  if st.h + st.m < shape[4] then return 0 end
  local change, amount = st.h - st.r, math.abs(st.t)
  local main_hits = math.max(st.h - st.x, 0)
  if not (st.x * st.p * 3 > main_hits * st.w * 2) then amount = -amount end
  local step
  if math.abs(change) * 20 >= shape[4] then
    if amount >= 0 then step = shape[5] else step = -shape[5] end
  else
    -- 98% of it, truncated toward zero (exact: amount x 98 is an integer below 2^53).
    step = amount * 98 / 100
    if step < 0 then step = math.ceil(step) else step = math.floor(step) end
  end
  st.r, st.t, st.h, st.m, st.x = st.h, step, 0, 0, 0
  if amount > 0 then
    -- At most 1,000 entries move at once (Caffeine's queue transfer threshold).
    local quota = math.min(amount, st.p, 1000)
    st.p, st.w = st.p - quota, st.w + quota
    return quota
  end
  local quota = math.min(-amount, math.max(st.w - 1, 0), 1000)
  st.w, st.p = st.w - quota, st.p + quota
  return -quota
end

-- The score range of `segment`, as strings (see tlfu_counters).
local function tlfu_range(segment)
  return string.format('%d', segment * 2^50), string.format('%d', (segment + 1) * 2^50 - 1)
end

local function tlfu_oldest(index, segment)
  local low, high = tlfu_range(segment)
  return redis.call('ZRANGEBYSCORE', index, low, high, 'LIMIT', '0', '1')[1]
end

-- Makes `member` the newest of `segment`. Returns ZADD's reply: 1 when `member` was not
-- indexed, else 0.
local function tlfu_move(index, st, member, segment)
  st.c = st.c + 1
  return redis.call('ZADD', index, string.format('%d', segment * 2^50 + st.c), member)
end

-- Moves the oldest of `segment` to probation while the segment holds more than `size`: the
-- window's overflow after an insert or when it shrinks, protected's after a promotion or a
-- resize. Counted once (ZCOUNT): each move takes one entry out of the segment. Returns the
-- first entry moved, if any (an insert's candidate).
local function tlfu_overflow(index, st, segment, size)
  local first
  local low, high = tlfu_range(segment)
  for _ = 1, redis.call('ZCOUNT', index, low, high) - size do
    local oldest = tlfu_oldest(index, segment)
    if not oldest then break end
    tlfu_move(index, st, oldest, 1)
    first = first or oldest
  end
  return first
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
    tlfu_overflow(index, st, 2, st.p)
  elseif by < 0 then
    tlfu_overflow(index, st, 0, st.w)
  end
end

-- A use of `member` (present): a hit (`hit` true, after tlfu_climb counted it), or an
-- overwrite.
local function tlfu_touch(index, st, member, hit)
  tlfu_increment(st, member)
  local segment = math.floor(tonumber(redis.call('ZSCORE', index, member) or '0') / 2^50)
  if hit and segment == 0 then st.x = st.x + 1 end
  if segment == 1 then
    -- Used again on probation: protected, whose oldest go back to probation while it is over
    -- its size.
    tlfu_move(index, st, member, 2)
    tlfu_overflow(index, st, 2, st.p)
  else
    tlfu_move(index, st, member, segment)
  end
end

-- The estimated frequencies of `a` and `b` (the least of each one's counters), in one read
-- with their slices' aging counts; when a slice had to be halved first, read again.
local function tlfu_frequencies(st, a, b)
  local sa, ata, a1, a2, a3, a4 = tlfu_counters(a, st.shape[3])
  local sb, atb, b1, b2, b3, b4 = tlfu_counters(b, st.shape[3])
  local function read()
    return redis.call('BITFIELD_RO', st.sketch, 'GET', 'i64', ata, 'GET', 'i64', atb,
      'GET', 'u4', a1, 'GET', 'u4', a2, 'GET', 'u4', a3,
      'GET', 'u4', a4, 'GET', 'u4', b1, 'GET', 'u4', b2, 'GET', 'u4', b3, 'GET', 'u4', b4)
  end
  local v = read()
  if v[1] < st.e or v[2] < st.e then
    tlfu_age(st, sa, v[1])
    -- One slice is halved once, even when both members are in it.
    if sb ~= sa then tlfu_age(st, sb, v[2]) end
    v = read()
  end
  return math.min(v[3], v[4], v[5], v[6]), math.min(v[7], v[8], v[9], v[10])
end

-- Caffeine's random admission (1 in 128) of a warm candidate (a frequency of at least 6),
-- deterministic: the counted uses of the sketch plus the candidate's ninth byte, modulo 128
-- (as `lucky` in tinylfu.rs).
local function tlfu_lucky(st, candidate)
  return (st.n + string.byte(candidate, 9)) % 128 == 0
end

-- Inserts `member` (new) into the window, moves the window's overflow to probation, and
-- evicts from the index down to maxsize: the first entry moved out of the window (the
-- candidate) against probation's oldest (the victim), the one the sketch says is used less
-- often leaving (a tie keeps the victim, but a warm candidate wins one duel in 128: see
-- tlfu_lucky). `size` is the index's size before the insert (the caller has just read it; with
-- what the ZADD of `member` added, a ZCARD fewer). Returns the evicted members (their entries
-- are the caller's to delete).
local function tlfu_insert(index, st, maxsize, member, size)
  tlfu_resize(index, st, tlfu_climb(st, false))
  tlfu_increment(st, member)
  -- 1, or 0 when `member` was indexed without an entry (put.lua heals only sizes out of step).
  local added = tlfu_move(index, st, member, 0)
  local candidate = tlfu_overflow(index, st, 0, st.w)
  local out = {}
  size = size + added
  while size > maxsize do
    local victim, loser = tlfu_oldest(index, 1), nil
    if candidate and victim and candidate ~= victim then
      local fc, fv = tlfu_frequencies(st, candidate, victim)
      if fc > fv or (fc >= 6 and tlfu_lucky(st, candidate)) then
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
