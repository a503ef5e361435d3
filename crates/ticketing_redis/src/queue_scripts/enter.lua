-- Enter the line. KEYS[15] = this client's entry counter.
-- ARGV: epoch candidate, user id or '', max_active, admit_per_second, active_ttl_ms, idle_ms,
-- bucket_ms, entries per second per client (0 = unlimited), keep-alive window, the room's mode
-- ('passthrough': no rate or capacity applied, admissions still counted; 'random'; '' for
-- fifo), then what a new
-- line starts with besides the configured values: '1'/'0' paused ('' none) and a scheduled
-- opening in ms ('' none): a room's stored settings, so that a line its store lost comes back
-- as the operator left it.
-- Returns {status, epoch, place, number, opens_at}: number is the expiry (ACTIVE: a live place
-- handed back; ADMITTED: admitted by this entry), the position (WAITING) or the milliseconds to
-- wait (RATE_LIMITED); opens_at (ms, 0 when none) is a scheduled opening's time.
local candidate, user = ARGV[1], ARGV[2]
local max_active, rate = tonumber(ARGV[3]), tonumber(ARGV[4])
local ttl_ms, idle_ms, bucket_ms = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local client_limit, window = tonumber(ARGV[8]), tonumber(ARGV[9])
local start_paused, start_opens_at = ARGV[11] or '', ARGV[12] or ''
local epoch = redis.call('GET', epoch_key)
if not epoch and redis.call('EXISTS', settings_key) == 0 then
  -- A line that does not exist yet (never did, or its store lost it): it starts with the
  -- room's stored pause and a scheduled opening that is still ahead.
  if start_paused ~= '' then redis.call('HSET', settings_key, 'paused', start_paused) end
  if start_opens_at ~= '' and tonumber(start_opens_at) > now then
    redis.call('HSET', settings_key, 'opens_at', start_opens_at)
  end
end
local live = live_settings(rate, max_active, ttl_ms)
rate, max_active, ttl_ms = live.rate, live.max_active, live.ttl_ms
if ARGV[10] == 'passthrough' then rate, max_active = UNLIMITED, UNLIMITED end

if client_limit > 0 then
  local entries = redis.call('INCR', KEYS[15])
  if entries == 1 then redis.call('PEXPIRE', KEYS[15], 1000) end
  if entries > client_limit then
    return {'RATE_LIMITED', '', 0, math.max(redis.call('PTTL', KEYS[15]), 1), 0}
  end
end

if not epoch then
  epoch = candidate
  redis.call('SET', epoch_key, epoch)
end

-- One place per user: a live place of this user is handed back.
if user ~= '' then
  local existing = redis.call('HGET', users, user)
  if existing then
    local status, number = state_of(tonumber(existing), idle_ms, bucket_ms, true, window)
    if status == 'WAITING' and live.opens_at > 0 then number = 0 end
    if status then return {status, epoch, tonumber(existing), number, live.opens_at} end
  end
end

settle_opening(live)
local seq = redis.call('INCR', seq_key)
local head = head_now()
if user ~= '' then bind_user(user, seq) end

-- Straight in when the line is open and not paused, every earlier place is decided, there is
-- room and the budget allows.
if head == seq - 1 and not live.paused and live.opens_at == 0 then
  local in_use = redis.call('ZCOUNT', active, '(' .. int(now), '+inf')
  if in_use < max_active and budget_left(rate) > 0 then
    spend(1)
    local expiry = now + ttl_ms
    redis.call('ZADD', active, int(expiry), seq)
    redis.call('SET', head_key, seq)
    publish('a', seq, int(expiry))
    return {'ADMITTED', epoch, seq, expiry, 0}
  end
end

mark_seen({seq}, idle_ms, bucket_ms)
-- In a pre-queue nobody has a place until the draw: position 0.
if live.opens_at > 0 then return {'WAITING', epoch, seq, 0, live.opens_at} end
return {'WAITING', epoch, seq, seq - head, 0}
