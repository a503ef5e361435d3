-- Enter the queue. KEYS[7] = arrival sequence, KEYS[8] = this client's entry counter.
-- ARGV: new token, user id or '', max_active, admit_per_second, active_ttl_ms, idle_ms,
-- entries per second per client (0 = unlimited).
-- Returns {status, token, user, number}: number is the expiry (ACTIVE), the position (WAITING)
-- or the milliseconds to wait (RATE_LIMITED).
local token, user = ARGV[1], ARGV[2]
local max_active, rate = tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl_ms, idle_ms, client_limit = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

if client_limit > 0 then
  local entries = redis.call('INCR', KEYS[8])
  if entries == 1 then redis.call('PEXPIRE', KEYS[8], 1000) end
  if entries > client_limit then
    return {'RATE_LIMITED', '', '', math.max(redis.call('PTTL', KEYS[8]), 1)}
  end
end

-- One place per user: a live token of this user is handed back, in its place.
if user ~= '' then
  local existing = redis.call('HGET', user_token, user)
  if existing then
    local status, number = state_of(existing, idle_ms, true)
    if status then return {status, existing, user, int(number)} end
    unbind(existing)
  end
  redis.call('HSET', user_token, user, token)
  redis.call('HSET', token_user, token, user)
end

-- Straight in when nobody waits, there is room and this second's budget allows.
if redis.call('ZCARD', waiting) == 0 then
  local live = redis.call('ZCOUNT', active, '(' .. int(now), '+inf')
  if live < max_active and budget_left(rate) > 0 then
    spend(1)
    local expiry = now + ttl_ms
    redis.call('ZADD', active, int(expiry), token)
    return {'ACTIVE', token, user, int(expiry)}
  end
end

local sequence = redis.call('INCR', KEYS[7])
redis.call('ZADD', waiting, sequence, token)
redis.call('ZADD', last_seen, int(now), token)
return {'WAITING', token, user, redis.call('ZCARD', waiting)}
