-- Hand back a user's live place, entering nobody (a room that takes no new entries keeps the
-- places of those already in). ARGV: user, idle_ms, bucket_ms, keep-alive window.
-- Returns {status, epoch, place, number, opens_at} as enter does, or {'NONE'}.
local user, idle_ms, bucket_ms, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local epoch = redis.call('GET', epoch_key)
if not epoch then return {'NONE'} end
local existing = redis.call('HGET', users, user)
if not existing then return {'NONE'} end
local status, number = state_of(tonumber(existing), idle_ms, bucket_ms, true, window)
if not status then return {'NONE'} end
local opens_at = tonumber(redis.call('HGET', settings_key, 'opens_at') or '0')
if status == 'WAITING' and opens_at > 0 then number = 0 end
return {status, epoch, tonumber(existing), number, opens_at}
