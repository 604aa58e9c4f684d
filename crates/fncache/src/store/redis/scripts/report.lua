-- report.lua: one batch of a process's shared counters and registry records
-- (shared_stats.rs). A script rather than a pipeline: one round trip on a server and on a
-- cluster alike (both keys share a slot), and the batch lands whole or not at all.
-- KEYS: registry, counters
-- ARGV: keep (ms), record count n, n registry field/JSON pairs, then counter field/delta pairs
local keep, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local at = 3
for _ = 1, n do
  redis.call('HSET', KEYS[1], ARGV[at], ARGV[at + 1])
  at = at + 2
end
while at < #ARGV do
  redis.call('HINCRBY', KEYS[2], ARGV[at], ARGV[at + 1])
  at = at + 2
end
-- Both expire a while after the last batch of any process.
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return 1
