-- The state of a token. ARGV: token, idle_ms, keep_alive ('1' counts as a poll).
-- Returns {status, user, number}: status ACTIVE (number = expiry ms), WAITING (number =
-- position) or UNKNOWN.
local token = ARGV[1]
local status, number = state_of(token, tonumber(ARGV[2]), ARGV[3] == '1')
if not status then return {'UNKNOWN', '', 0} end
return {status, redis.call('HGET', token_user, token) or '', int(number)}
