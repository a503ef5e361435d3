-- Moves the line's stored times ARGV[1] ms into the past: what a test does instead of waiting,
-- since Redis's clock cannot be moved. KEYS: active, the liveness bitmaps' prefix, admission,
-- settings. ARGV: elapsed ms, idle ms, bucket ms, the pattern of the per-client entry counters.
local active, seen_prefix, admission, settings = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local elapsed, idle_ms, bucket_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function int(x) return string.format('%.0f', x) end

local members = redis.call('ZRANGE', active, 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  redis.call('ZADD', active, int(tonumber(members[i + 1]) - elapsed), members[i])
end

-- Polls are recorded per bucket of time: each bitmap moves back by whole buckets, oldest first
-- so that none overwrites one not yet moved.
local shift = math.floor(elapsed / bucket_ms + 0.5)
if shift > 0 then
  local newest = math.floor(now / bucket_ms)
  local oldest = math.floor((now - idle_ms) / bucket_ms) - 2
  for b = oldest, newest do
    local key = seen_prefix .. b
    if redis.call('EXISTS', key) == 1 then
      redis.call('RENAME', key, seen_prefix .. int(b - shift))
    end
  end
end

if now % 1000 + elapsed >= 1000 then redis.call('HDEL', admission, 'second') end

local opens_at = redis.call('HGET', settings, 'opens_at')
if opens_at then redis.call('HSET', settings, 'opens_at', int(tonumber(opens_at) - elapsed)) end

local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[4], 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    local left = redis.call('PTTL', key)
    if left > elapsed then redis.call('PEXPIRE', key, left - elapsed) else redis.call('DEL', key) end
  end
until cursor == '0'
return 1
