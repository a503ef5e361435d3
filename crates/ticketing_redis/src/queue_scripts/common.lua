-- Shared by every waiting-queue script. KEYS[1..6] are the same in all of them:
-- waiting (sorted set, score = arrival sequence), active (sorted set, score = expiry in ms),
-- last_seen (sorted set of WAITING tokens, score = last poll in ms), user_token and token_user
-- (hashes binding a token to its user), admission (hash: second, count, total).
-- The clock is Redis's own, so every app instance sees the same time.
local waiting, active, last_seen = KEYS[1], KEYS[2], KEYS[3]
local user_token, token_user, admission = KEYS[4], KEYS[5], KEYS[6]

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local this_second = clock[1]

-- Numbers as integer strings: Lua 5.1 would print large ones in exponent notation.
local function int(x) return string.format('%.0f', x) end

local function unbind(token)
  local user = redis.call('HGET', token_user, token)
  if user then
    if redis.call('HGET', user_token, user) == token then
      redis.call('HDEL', user_token, user)
    end
    redis.call('HDEL', token_user, token)
  end
end

local function forget(token)
  redis.call('ZREM', active, token)
  redis.call('ZREM', waiting, token)
  redis.call('ZREM', last_seen, token)
  unbind(token)
end

-- 'ACTIVE', expiry_ms | 'WAITING', position | nil when unknown. An expired or idle token is
-- forgotten on the spot, so the answer never depends on the admission job having run.
local function state_of(token, idle_ms, keep_alive)
  local expiry = redis.call('ZSCORE', active, token)
  if expiry then
    if tonumber(expiry) > now then return 'ACTIVE', tonumber(expiry) end
    forget(token)
    return nil
  end
  local rank = redis.call('ZRANK', waiting, token)
  if not rank then return nil end
  local seen = tonumber(redis.call('ZSCORE', last_seen, token) or now)
  if now - seen > idle_ms then
    forget(token)
    return nil
  end
  if keep_alive then redis.call('ZADD', last_seen, int(now), token) end
  return 'WAITING', rank + 1
end

local function budget_left(rate)
  if redis.call('HGET', admission, 'second') ~= this_second then return rate end
  return rate - tonumber(redis.call('HGET', admission, 'count') or '0')
end

local function spend(n)
  if redis.call('HGET', admission, 'second') ~= this_second then
    redis.call('HSET', admission, 'second', this_second, 'count', n)
  else
    redis.call('HINCRBY', admission, 'count', n)
  end
  redis.call('HINCRBY', admission, 'total', n)
end
