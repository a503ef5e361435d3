-- Remove a token, waiting or active. ARGV: token, idle_ms. Returns 1 when it was live.
local token = ARGV[1]
local status = state_of(token, tonumber(ARGV[2]), false)
forget(token)
if status then return 1 end
return 0
