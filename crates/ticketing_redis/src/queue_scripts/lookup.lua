-- Where a place stands, by the store. ARGV: epoch, place, idle_ms, bucket_ms, keep_alive ('1'
-- counts as a poll), keep-alive window. Returns {status, number}: ACTIVE (expiry ms), WAITING (position) or
-- UNKNOWN (dead, or of another epoch).
if redis.call('GET', epoch_key) ~= ARGV[1] then return {'UNKNOWN', 0} end
local status, number = state_of(tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  ARGV[5] == '1', tonumber(ARGV[6]))
if not status then return {'UNKNOWN', 0} end
-- In a pre-queue nobody has a place until the draw: position 0.
if status == 'WAITING' and redis.call('HEXISTS', settings_key, 'opens_at') == 1 then number = 0 end
return {status, number}
