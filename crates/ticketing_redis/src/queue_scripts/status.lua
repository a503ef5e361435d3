-- The line as an operator sees it. ARGV: the configured max_active, admit_per_second,
-- active_ttl_ms. Returns {paused, rate, max_active, ttl_ms, opens_at, waiting, active}.
local live = live_settings(tonumber(ARGV[2]), tonumber(ARGV[1]), tonumber(ARGV[3]))
return {live.paused and 1 or 0, live.rate, live.max_active, live.ttl_ms, live.opens_at,
  last_now() - head_now(), redis.call('ZCOUNT', active, '(' .. int(now), '+inf')}
