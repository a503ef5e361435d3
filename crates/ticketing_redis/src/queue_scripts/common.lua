-- Shared by every waiting-line script. KEYS[1..14] are the same in all of them:
-- epoch (the line's incarnation), seq (last arrival number handed out), head (every place up to
-- it is decided: admitted or skipped), active (sorted set: arrival number -> expiry ms), left
-- (sorted set: arrival number -> place, of those who left while waiting), log (stream of
-- admissions and revocations that every instance follows), admission (hash: second, count,
-- total, log_floor), users (hash: user -> arrival number), seen (prefix of the liveness bitmaps:
-- one bit per arrival number per time bucket), settings (hash: an operator's live settings:
-- paused, rate, max_active, ttl_ms, opens_at, and draw_seed: the hex seed of the scheduled
-- opening's draw, secret until the draw), draw (hash: after, through, drawn, seed: the places of
-- the last scheduled opening and, once drawn, the seed its order was computed from), order and
-- inverse (strings of 4-byte offsets: the draw's order),
-- seq_users (hash: arrival number -> user, the other direction of users, so that a place that
-- ends by itself, expired or idle, can let go of its user).
-- A place is where someone stands in the line; it equals their arrival number except inside a
-- draw, which permutes the places (after, through].
-- The clock is Redis's own, so every app instance sees the same time.
local epoch_key, seq_key, head_key = KEYS[1], KEYS[2], KEYS[3]
local active, left, log = KEYS[4], KEYS[5], KEYS[6]
local admission, users, seen_prefix = KEYS[7], KEYS[8], KEYS[9]
local settings_key, draw_key, order_key, inverse_key = KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local seq_users = KEYS[14]

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local this_second = clock[1]

-- How long the log keeps an entry: instances read it every admission interval; one that falls
-- further behind starts over from a snapshot.
local LOG_RETENTION_MS = 60000

-- The rate and capacity of a passthrough room: more than any line reaches.
local UNLIMITED = 1000000000

-- Numbers as integer strings: Lua 5.1 would print large ones in exponent notation.
local function int(x) return string.format('%.0f', x) end

local function head_now() return tonumber(redis.call('GET', head_key) or '0') end
local function last_now() return tonumber(redis.call('GET', seq_key) or '0') end

-- Liveness: a place is alive while its bit is set in a bucket that ended less than idle_ms ago.
local function bucket_of(t, bucket_ms) return math.floor(t / bucket_ms) end

local function seen_within(seq, idle_ms, bucket_ms)
  local newest = bucket_of(now, bucket_ms)
  local oldest = bucket_of(now - idle_ms, bucket_ms)
  for b = newest, oldest, -1 do
    if redis.call('GETBIT', seen_prefix .. b, seq) == 1 then return true end
  end
  return false
end

local function mark_seen(seqs, idle_ms, bucket_ms)
  local key = seen_prefix .. bucket_of(now, bucket_ms)
  for _, seq in ipairs(seqs) do redis.call('SETBIT', key, seq, 1) end
  redis.call('PEXPIRE', key, int(idle_ms + 2 * bucket_ms))
end

-- A place bound to a user: both directions, so that whichever way the place ends its user is
-- forgotten with it.
local function bind_user(user, seq)
  redis.call('HSET', users, user, seq)
  redis.call('HSET', seq_users, seq, user)
end

-- A place has ended (expired, skipped as idle or left, revoked): its user, if it had one, is
-- forgotten unless they hold a newer place by now. Without this, users would keep a field for
-- every person who ever entered. O(1).
local function forget_user_of(seq)
  local field = int(tonumber(seq))
  local user = redis.call('HGET', seq_users, field)
  if not user then return end
  if redis.call('HGET', users, user) == field then redis.call('HDEL', users, user) end
  redis.call('HDEL', seq_users, field)
end

local function has_left(seq) return redis.call('ZSCORE', left, seq) ~= false end

-- The settings in force: an operator's, else the configured ones given by the caller.
local function live_settings(rate, max_active, ttl_ms)
  local s = redis.call('HMGET', settings_key, 'paused', 'rate', 'max_active', 'ttl_ms', 'opens_at')
  return {
    paused = s[1] == '1',
    rate = tonumber(s[2] or rate),
    max_active = tonumber(s[3] or max_active),
    ttl_ms = tonumber(s[4] or ttl_ms),
    opens_at = tonumber(s[5] or '0'),
  }
end

-- The last draw: after, through, drawn ('1' once its order is recorded), seed (once drawn).
local draw = nil
local function last_draw()
  if draw == nil then
    local d = redis.call('HMGET', draw_key, 'after', 'through', 'drawn', 'seed')
    if d[1] then
      draw = {after = tonumber(d[1]), through = tonumber(d[2]), drawn = d[3] == '1',
        seed = d[4] or ''}
    else
      draw = false
    end
  end
  return draw
end

-- Once a scheduled opening's time has passed, the places handed out until then are fixed as
-- its draw's range, once, by whichever script runs first: later entries queue behind them.
-- An opening nobody came to opens at once.
local function settle_opening(live)
  if live.opens_at == 0 or now < live.opens_at then return end
  local d = last_draw()
  if not d or d.drawn then
    redis.call('HSET', draw_key, 'after', head_now(), 'through', last_now(), 'drawn', '0')
    draw = nil
    d = last_draw()
  end
  if d.through == d.after then
    -- Nobody to draw, yet the seed is published as for any draw: a commitment is kept.
    local seed = redis.call('HGET', settings_key, 'draw_seed') or ''
    redis.call('HSET', draw_key, 'drawn', '1', 'seed', seed)
    redis.call('DEL', order_key, inverse_key)
    redis.call('HDEL', settings_key, 'opens_at', 'draw_seed')
    draw = nil
    live.opens_at = 0
  end
end

local function offset_at(key, index)
  local bytes = redis.call('GETRANGE', key, index * 4, index * 4 + 3)
  return struct.unpack('>I4', bytes)
end

-- Through the draw in force, `n`'s counterpart by `key`: the order (place -> arrival number)
-- or its inverse (arrival number -> place); outside the draw, `n` itself.
local function through_draw(key, n)
  local d = last_draw()
  if d and d.drawn and n > d.after and n <= d.through then
    return d.after + 1 + offset_at(key, n - d.after - 1)
  end
  return n
end

-- The place of an arrival number, and the arrival number at a place.
local function place_of(seq) return through_draw(inverse_key, seq) end
local function seq_at(place) return through_draw(order_key, place) end

-- How far from the front keep-alives are tracked: the places the front can reach within two
-- idle timeouts at the live rate (at least `window`). Further back, liveness is not checked:
-- a place is judged when it comes within reach, and the front skips it if its holder is gone.
local function keep_alive_window(window, idle_ms)
  local rate = tonumber(redis.call('HGET', settings_key, 'rate') or '0')
  return math.max(window, 2 * rate * idle_ms / 1000)
end

-- 'ACTIVE', expiry_ms | 'WAITING', position | nil when dead (expired, ended, skipped, idle).
local function state_of(seq, idle_ms, bucket_ms, keep_alive, window)
  local head = head_now()
  local place = place_of(seq)
  if place <= head then
    local expiry = redis.call('ZSCORE', active, seq)
    if expiry and tonumber(expiry) > now then return 'ACTIVE', tonumber(expiry) end
    return nil
  end
  if seq > last_now() or has_left(seq) then return nil end
  local tracked = place - head <= keep_alive_window(window, idle_ms)
  if tracked and not seen_within(seq, idle_ms, bucket_ms) then return nil end
  if keep_alive then mark_seen({seq}, idle_ms, bucket_ms) end
  return 'WAITING', place - head
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

-- Appends to the log every instance follows: 'a' (places admitted until a time) or 'r' (a
-- place ended).
local function publish(kind, seqs, expiry)
  local floor = int(now - LOG_RETENTION_MS)
  redis.call('XADD', log, 'MINID', '~', floor, '*', 't', kind, 's', seqs, 'u', expiry)
  -- Entries before the floor may be gone: a cursor older than it starts over from a snapshot.
  redis.call('HSET', admission, 'log_floor', floor)
end
