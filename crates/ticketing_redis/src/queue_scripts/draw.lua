-- Record the order of a due draw, once. ARGV: after, through, order (4-byte offsets: the
-- arrival number at each place), inverse (the place of each arrival number), the hex seed the
-- order was computed from (published from now on).
-- Returns 1 when this order was recorded, 0 when the draw was no longer due (already recorded).
local d = last_draw()
if not d or d.drawn or d.after ~= tonumber(ARGV[1]) or d.through ~= tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', order_key, ARGV[3])
redis.call('SET', inverse_key, ARGV[4])
redis.call('HSET', draw_key, 'drawn', '1', 'seed', ARGV[5])
redis.call('HDEL', settings_key, 'opens_at', 'draw_seed')
draw = nil
-- Those who left before the draw are found by their place from now on.
for _, seq in ipairs(redis.call('ZRANGEBYSCORE', left, '(' .. d.after, d.through)) do
  redis.call('ZADD', left, place_of(tonumber(seq)), seq)
end
return 1
