-- tinylfu_insert.lua: what only put.lua needs of Policy::TinyLfu (prepended after tinylfu.lua,
-- whose helpers it uses): the hit script does not pay for these closures.

-- The state of a structure whose sketch was just deleted (as tlfu_load reads it then).
local function tlfu_fresh(sketch, shape)
  return tlfu_state(sketch, shape, '')
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
  local candidate
  -- Counted once, as in tlfu_overflow (a ZCOUNT fewer per move).
  for _ = 1, tlfu_len(index, 0) - st.w do
    local oldest = tlfu_oldest(index, 0)
    if not oldest then break end
    tlfu_move(index, st, oldest, 1)
    candidate = candidate or oldest
  end
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
