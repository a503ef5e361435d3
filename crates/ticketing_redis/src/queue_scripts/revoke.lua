-- End a place, waiting or active, and tell every instance. ARGV: epoch, place, user or '',
-- idle_ms, bucket_ms, keep-alive window. Returns 1 when it was live.
if redis.call('GET', epoch_key) ~= ARGV[1] then return 0 end
local seq = tonumber(ARGV[2])
local status = state_of(seq, tonumber(ARGV[4]), tonumber(ARGV[5]), false, tonumber(ARGV[6]))
local place = place_of(seq)
if place <= head_now() then
  redis.call('ZREM', active, seq)
elseif seq <= last_now() then
  redis.call('ZADD', left, place, seq)
end
forget_user_of(seq)
-- A place bound before seq_users existed is known only by the token's user.
if ARGV[3] ~= '' and redis.call('HGET', users, ARGV[3]) == ARGV[2] then
  redis.call('HDEL', users, ARGV[3])
end
if status then
  publish('r', seq, '')
  return 1
end
return 0
