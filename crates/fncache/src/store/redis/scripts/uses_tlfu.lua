-- uses_tlfu.lua: a near cache's hits of a Policy::TinyLfu structure (see near.rs and
-- uses.lua), applied as get.lua's hits would have been, with tinylfu.lua prepended: each use
-- of a member still indexed counts for the climber, the sketch and the segments. At most 15
-- uses of a member are applied per batch (its counters saturate at 15 anyway), so that a hot
-- near copy does not make one script run long.
-- KEYS: index, sketch
-- ARGV: rule word ('tlfu:' and the shape), then a member and its count per member, oldest use
--       first
local index, sketch = KEYS[1], KEYS[2]
if #ARGV < 3 then return 0 end
local st = tlfu_load(sketch, tlfu_shape(ARGV[1]))
for i = 2, #ARGV - 1, 2 do
  local member = ARGV[i]
  if redis.call('ZSCORE', index, member) then
    for _ = 1, math.min(tonumber(ARGV[i + 1]) or 0, 15) do
      tlfu_resize(index, st, tlfu_climb(st, true))
      tlfu_touch(index, st, member, true)
    end
  end
end
tlfu_save(st)
return 0
