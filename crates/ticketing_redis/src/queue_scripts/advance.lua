-- One step of the line, safe to run from any number of instances at once: the room and this
-- second's budget are read and spent in the same atomic script.
-- ARGV: max_active, admit_per_second, active_ttl_ms, idle_ms, bucket_ms, most admitted per step,
-- most places walked per step, cursor epoch, cursor log id, then the places polled on the
-- caller since its last step.
-- Returns {admitted, expired, skipped, undecided, active, epoch, head, last, mode, cursor,
-- events}: mode 'since' with events (kind, places, expiry) after the cursor, or 'snapshot' with
-- every ACTIVE place ('a', place, expiry) and every place that left ('l', place, '').
local max_active, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local ttl_ms, idle_ms, bucket_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local batch, walk_limit = tonumber(ARGV[6]), tonumber(ARGV[7])
local cursor_epoch, cursor_id = ARGV[8], ARGV[9]

local polled = {}
for i = 10, #ARGV do polled[#polled + 1] = ARGV[i] end

local epoch = redis.call('GET', epoch_key)
if not epoch then
  return {0, 0, 0, 0, 0, '', 0, 0, 'since', '', {}}
end
if #polled > 0 then mark_seen(polled, idle_ms, bucket_ms) end

local gone = redis.call('ZRANGEBYSCORE', active, '-inf', int(now), 'LIMIT', 0, batch)
if #gone > 0 then redis.call('ZREM', active, unpack(gone)) end
local live = redis.call('ZCOUNT', active, '(' .. int(now), '+inf')

-- The second's budget is spread over the second (by its m-th millisecond, at most
-- ceil(rate * (m + 1) / 1000) admitted), so admitted users do not all arrive in one burst.
local ms_into_second = math.floor(tonumber(clock[2]) / 1000)
local allowed_by_now = math.min(rate, math.ceil(rate * (ms_into_second + 1) / 1000))
local spent = rate - budget_left(rate)
local room = math.max(0, math.min(max_active - live, allowed_by_now - spent, batch))

-- Walk the front: places whose holder left or stopped polling are skipped without spending
-- the budget or the room; the others are admitted while there is room.
local head, last = head_now(), last_now()
local expiry = now + ttl_ms
local admitted, skipped = {}, 0
local seq = head
while seq < last and seq - head < walk_limit do
  local next_seq = seq + 1
  if has_left(next_seq) or not seen_within(next_seq, idle_ms, bucket_ms) then
    skipped = skipped + 1
  elseif #admitted < room then
    redis.call('ZADD', active, int(expiry), next_seq)
    admitted[#admitted + 1] = next_seq
  else
    break
  end
  seq = next_seq
end
if seq ~= head then
  redis.call('SET', head_key, seq)
  redis.call('ZREMRANGEBYSCORE', left, '-inf', seq)
  head = seq
end
if #admitted > 0 then
  spend(#admitted)
  publish('a', table.concat(admitted, ','), int(expiry))
end

local function id_parts(id)
  local ms, n = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms or '0'), tonumber(n or '0')
end
local function id_before(a, b)
  local a_ms, a_n = id_parts(a)
  local b_ms, b_n = id_parts(b)
  return a_ms < b_ms or (a_ms == b_ms and a_n < b_n)
end

local last_id, trimmed_through = '0-0', '0-0'
if redis.call('EXISTS', log) == 1 then
  local info = redis.call('XINFO', 'STREAM', log)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last_id = info[i + 1] end
    if info[i] == 'max-deleted-entry-id' then trimmed_through = info[i + 1] end
  end
end

local events = {}
local mode = 'since'
local cursor = cursor_id
if cursor_epoch ~= epoch or cursor_id == '' or id_before(cursor_id, trimmed_through) then
  mode = 'snapshot'
  cursor = last_id
  local places = redis.call('ZRANGEBYSCORE', active, '(' .. int(now), '+inf', 'WITHSCORES')
  for i = 1, #places, 2 do
    events[#events + 1] = 'a'
    events[#events + 1] = places[i]
    events[#events + 1] = places[i + 1]
  end
  for _, place in ipairs(redis.call('ZRANGEBYSCORE', left, '(' .. head, '+inf')) do
    events[#events + 1] = 'l'
    events[#events + 1] = place
    events[#events + 1] = ''
  end
else
  local entries = redis.call('XRANGE', log, '(' .. cursor_id, '+', 'COUNT', 1000)
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    events[#events + 1] = fields[2]
    events[#events + 1] = fields[4]
    events[#events + 1] = fields[6]
    cursor = entry[1]
  end
end

return {#admitted, #gone, skipped, last - head, live + #admitted, epoch, head, last, mode,
  cursor, events}
