-- One admission step, safe to run from any number of instances at once: the room and this
-- second's budget are read and spent in the same atomic script.
-- ARGV: max_active, admit_per_second, active_ttl_ms, idle_ms, most tokens handled per step.
-- Returns {admitted, expired, dropped_idle, waiting, active}.
local max_active, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local ttl_ms, idle_ms, batch = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local expired = redis.call('ZRANGEBYSCORE', active, '-inf', int(now), 'LIMIT', 0, batch)
for _, token in ipairs(expired) do forget(token) end

local idle = redis.call('ZRANGEBYSCORE', last_seen, '-inf', '(' .. int(now - idle_ms), 'LIMIT', 0, batch)
for _, token in ipairs(idle) do forget(token) end

local live = redis.call('ZCOUNT', active, '(' .. int(now), '+inf')
-- The second's budget is spread over the second (by its m-th millisecond, at most
-- ceil(rate * (m + 1) / 1000) admitted), so admitted users do not all arrive in one burst.
local ms_into_second = math.floor(tonumber(clock[2]) / 1000)
local allowed_by_now = math.min(rate, math.ceil(rate * (ms_into_second + 1) / 1000))
local spent = rate - budget_left(rate)
local admitted = 0
local n = math.min(max_active - live, allowed_by_now - spent, batch)
if n > 0 then
  local head = redis.call('ZPOPMIN', waiting, n)
  local expiry = int(now + ttl_ms)
  for i = 1, #head, 2 do
    redis.call('ZADD', active, expiry, head[i])
    redis.call('ZREM', last_seen, head[i])
    admitted = admitted + 1
  end
  if admitted > 0 then spend(admitted) end
end

return {admitted, #expired, #idle, redis.call('ZCARD', waiting), live + admitted}
