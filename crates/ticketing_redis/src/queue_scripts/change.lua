-- An operator's change of the live settings. ARGV: the configured max_active,
-- admit_per_second, active_ttl_ms, then paused, rate, max_active, ttl_ms, opens_at, each '' to
-- keep ('none' for opens_at cancels a scheduled opening), then the hex seed of the draw of the
-- opening scheduled ('' for none): an opening keeps the seed it was first scheduled with, so
-- moving it keeps the commitment published.
-- Returns {'OK', before..., after...} (paused, rate, max_active, ttl_ms, opens_at each) or
-- {'DRAW_PENDING'} when an opening is scheduled while the last draw's places are still
-- being admitted.
local configured_max, configured_rate, configured_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3])
local before = live_settings(configured_rate, configured_max, configured_ttl)
local paused, rate, max, ttl, opens_at = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local draw_seed = ARGV[9]

if opens_at ~= '' and opens_at ~= 'none' then
  local d = last_draw()
  if d and (not d.drawn or d.through > head_now()) then return {'DRAW_PENDING'} end
end
if paused ~= '' then redis.call('HSET', settings_key, 'paused', paused) end
if rate ~= '' then redis.call('HSET', settings_key, 'rate', rate) end
if max ~= '' then redis.call('HSET', settings_key, 'max_active', max) end
if ttl ~= '' then redis.call('HSET', settings_key, 'ttl_ms', ttl) end
if opens_at == 'none' then
  redis.call('HDEL', settings_key, 'opens_at', 'draw_seed')
  -- A cancelled opening draws nobody: its places stay in arrival order.
  local d = last_draw()
  if d and not d.drawn then redis.call('DEL', draw_key) end
elseif opens_at ~= '' then
  redis.call('HSET', settings_key, 'opens_at', opens_at)
  if draw_seed ~= '' then redis.call('HSETNX', settings_key, 'draw_seed', draw_seed) end
end
local after = live_settings(configured_rate, configured_max, configured_ttl)
local function flat(s)
  return {s.paused and 1 or 0, s.rate, s.max_active, s.ttl_ms, s.opens_at}
end
local reply = {'OK'}
for _, v in ipairs(flat(before)) do reply[#reply + 1] = v end
for _, v in ipairs(flat(after)) do reply[#reply + 1] = v end
return reply
