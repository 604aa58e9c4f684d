-- uses.lua: apply the near hits a process recorded (see near.rs) to a structure's index, as
-- get.lua's touch would have, for the rules whose touch depends on the index: 'counter' moves
-- each member still indexed to the top unless it is there, oldest use first; 'incr' adds each
-- member's count. A member evicted or removed since is not put back. (The 'time' rule needs no
-- script: a plain ZADD XX GT of the last use.)
-- KEYS: index
-- ARGV: touch rule (counter|incr), then a member and its count per member, oldest use first
local index, rule = KEYS[1], ARGV[1]
for i = 2, #ARGV - 1, 2 do
  local member = ARGV[i]
  if redis.call('ZSCORE', index, member) then
    if rule == 'incr' then
      redis.call('ZINCRBY', index, tonumber(ARGV[i + 1]), member)
    else
      local top = redis.call('ZREVRANGE', index, 0, 0, 'WITHSCORES')
      if top[1] ~= member then
        redis.call('ZADD', index, (tonumber(top[2]) or 0) + 1, member)
      end
    end
  end
end
return 0
