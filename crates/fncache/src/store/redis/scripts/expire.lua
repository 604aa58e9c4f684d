-- expire.lua: soft invalidation of one entry. A live entry's logical expiry (expire_at)
-- becomes now, so the next lookup finds it expired and recomputes, while the entry stays as a
-- fail-safe fallback until its keep_until, which is unchanged (as is its score in the expiry
-- index). Returns 1 when a live entry was marked, 0 otherwise (missing, already expired or
-- gone, or not an envelope this version reads).
-- KEYS: values
-- ARGV: member, the cache's near channel (see prelude.lua)
local values, member = KEYS[1], ARGV[1]
local entry = redis.call('HGET', values, member)
local format = entry and string.byte(entry, 1)
if not entry or #entry < 26 or (format ~= 1 and format ~= 2) then return 0 end
local now = now_us()
local near = listening(ARGV[2])
local _, expire_at, keep_until = times(entry)
if keep_until ~= 0 and keep_until <= now then return 0 end
if expire_at ~= 0 and expire_at <= now then return 0 end
-- Bytes 11 to 18 (1-based) hold expire_at; format, codec, written_at and the rest stay.
redis.call('HSET', values, member, string.sub(entry, 1, 10) .. struct.pack('>I8', now) .. string.sub(entry, 19))
if near then announce(ARGV[2], {member}) end
return 1
