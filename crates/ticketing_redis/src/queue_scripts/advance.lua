-- One step of the line, safe to run from any number of instances at once: the room and this
-- second's budget are read and spent in the same atomic script. Places that ended by themselves
-- (expired, or skipped at the front as idle or left) let go of their users here, within the
-- step's bounds (most expired per step, most places walked per step).
-- ARGV: max_active, admit_per_second, active_ttl_ms (the configured ones: an operator's live
-- settings take precedence), idle_ms, bucket_ms, most admitted per step, most places walked per
-- step, cursor epoch, cursor log id, the room's mode ('passthrough': no rate or capacity
-- applied, admissions still counted; 'random': the waiting are admitted in a drawn order, batch
-- by batch; '' for fifo), the caller's step interval in ms (0: unknown), then the arrival
-- numbers polled on the caller since its last step.
-- Returns {admitted, expired, skipped, undecided, active, epoch, head, last, mode, cursor,
-- events, settings, draw}: mode 'since' with events (kind, arrival numbers, expiry) after the
-- cursor, or 'snapshot' with every ACTIVE one ('a', number, expiry) and every one that left
-- ('l', number, ''); settings {paused, rate, max_active, ttl_ms, opens_at}; draw {after,
-- through, state}: state 'due' when an opening waits for its draw, 'drawn' when in force;
-- seeds {pending, after, through, seed}: the scheduled opening's seed ('' for none) and the
-- last draw made with its seed (0, 0, '' for none), kept after its places are admitted so
-- that it stays published.
local max_active, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local ttl_ms, idle_ms, bucket_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local batch, walk_limit = tonumber(ARGV[6]), tonumber(ARGV[7])
local cursor_epoch, cursor_id = ARGV[8], ARGV[9]

local live = live_settings(rate, max_active, ttl_ms)
rate, max_active, ttl_ms = live.rate, live.max_active, live.ttl_ms
local settings_reply = {live.paused and 1 or 0, rate, max_active, ttl_ms, live.opens_at}
local room_mode = ARGV[10]
if room_mode == 'passthrough' then rate, max_active = UNLIMITED, UNLIMITED end

local step_ms = tonumber(ARGV[11]) or 0

local polled = {}
for i = 12, #ARGV do polled[#polled + 1] = ARGV[i] end

local function seeds_reply()
  local reply = {redis.call('HGET', settings_key, 'draw_seed') or '', 0, 0, ''}
  local d = last_draw()
  if d and d.drawn and d.seed ~= '' then
    reply[2], reply[3], reply[4] = d.after, d.through, d.seed
  end
  return reply
end

local epoch = redis.call('GET', epoch_key)
if not epoch then
  return {0, 0, 0, 0, 0, '', 0, 0, 'since', '', {}, settings_reply, {0, 0, ''}, seeds_reply()}
end
if #polled > 0 then mark_seen(polled, idle_ms, bucket_ms) end

local gone = redis.call('ZRANGEBYSCORE', active, '-inf', int(now), 'LIMIT', 0, batch)
if #gone > 0 then redis.call('ZREM', active, unpack(gone)) end
for _, seq in ipairs(gone) do forget_user_of(seq) end
local in_use = redis.call('ZCOUNT', active, '(' .. int(now), '+inf')
local head, last = head_now(), last_now()

-- A scheduled opening: until it, a pre-queue (nobody admitted); once it has passed, the places
-- handed out until then wait for their draw, recorded by one instance; then the line opens.
settle_opening(live)
settings_reply[5] = live.opens_at
-- A random room: once the front has passed the last batch (and the room is not paused),
-- everyone waiting is drawn in a uniformly random order (a draw like a scheduled opening's, recorded by one instance), and
-- admitted through it before those who arrive later, who make the next batch.
if room_mode == 'random' and live.opens_at == 0 and not live.paused and last_now() > head_now() then
  local d = last_draw()
  if not d or (d.drawn and d.through <= head_now()) then
    redis.call('HSET', draw_key, 'after', head_now(), 'through', last_now(), 'drawn', '0')
    redis.call('HDEL', draw_key, 'seed')
    draw = nil
  end
end
local due = last_draw()
-- Not while a draw waits to be recorded: its places are not ordered yet.
local walking = live.opens_at == 0 and not (due and not due.drawn)

-- The second's budget is spread over the second (by its m-th millisecond, at most
-- ceil(rate * (m + 1) / 1000) admitted), so admitted users do not all arrive in one burst. A
-- step may admit what is due by the caller's next step (step_ms ahead): otherwise what falls
-- due after the second's last step would be lost, and the line would admit below its rate.
local ms_into_second = math.floor(tonumber(clock[2]) / 1000)
local allowed_by_now = math.min(rate, math.ceil(rate * (ms_into_second + 1 + step_ms) / 1000))
local spent = rate - budget_left(rate)
local room = math.max(0, math.min(max_active - in_use, allowed_by_now - spent, batch))
if live.paused then room = 0 end

-- Walk the front: places whose holder left or stopped polling are skipped without spending
-- the budget or the room; the others are admitted while there is room. Not during a pre-queue:
-- its places are not ordered yet.
local expiry = now + ttl_ms
local admitted, skipped = {}, 0
local place = head
while walking and place < last and place - head < walk_limit do
  local next_place = place + 1
  local seq = seq_at(next_place)
  if has_left(seq) or not seen_within(seq, idle_ms, bucket_ms) then
    skipped = skipped + 1
    forget_user_of(seq)
  elseif #admitted < room then
    redis.call('ZADD', active, int(expiry), seq)
    admitted[#admitted + 1] = seq
  else
    break
  end
  place = next_place
end
if place ~= head then
  redis.call('SET', head_key, place)
  redis.call('ZREMRANGEBYSCORE', left, '-inf', place)
  head = place
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

local last_id = '0-0'
if redis.call('EXISTS', log) == 1 then
  local newest = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
  if newest[1] then last_id = newest[1][1] end
end
local floor = (redis.call('HGET', admission, 'log_floor') or '0') .. '-0'

local most_events = 1000
local events = {}
local mode = 'since'
local cursor = cursor_id
local entries = {}
local behind = cursor_epoch ~= epoch or cursor_id == '' or id_before(cursor_id, floor)
if not behind then
  entries = redis.call('XRANGE', log, '(' .. cursor_id, '+', 'COUNT', most_events)
  -- More than a step's worth: a snapshot is smaller than the backlog.
  behind = #entries >= most_events
end
if behind then
  mode = 'snapshot'
  cursor = last_id
  local places = redis.call('ZRANGEBYSCORE', active, '(' .. int(now), '+inf', 'WITHSCORES')
  for i = 1, #places, 2 do
    events[#events + 1] = 'a'
    events[#events + 1] = places[i]
    events[#events + 1] = places[i + 1]
  end
  for _, seq in ipairs(redis.call('ZRANGEBYSCORE', left, '(' .. head, '+inf')) do
    events[#events + 1] = 'l'
    events[#events + 1] = seq
    events[#events + 1] = ''
  end
else
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    events[#events + 1] = fields[2]
    events[#events + 1] = fields[4]
    events[#events + 1] = fields[6]
    cursor = entry[1]
  end
end

local draw_reply = {0, 0, ''}
local d = last_draw()
if d then
  if d.drawn then
    if d.through > head then draw_reply = {d.after, d.through, 'drawn'} end
  else
    draw_reply = {d.after, d.through, 'due'}
  end
end

return {#admitted, #gone, skipped, last - head, in_use + #admitted, epoch, head, last, mode,
  cursor, events, settings_reply, draw_reply, seeds_reply()}
