-- All-or-none sliding-window acquisition across several cap rules (FrequencyCaps.try_acquire).
-- KEYS[i]: the sorted set of one player's acquisitions under rule i (score = stamp).
-- ARGV[1]: the stamp `now`; ARGV[2]: the member to add (a token, unique per acquisition);
-- ARGV[3]: reserve (units that must stay free beyond this one);
-- then four per rule, from ARGV[4]: limit, exclusive window start "(<now - window>",
-- forget bound (<now - window - lateness>, inclusive), key time to live in milliseconds.
-- Scores are passed as strings formatted by the caller, so Lua never rounds a stamp.
-- Returns 0 when every rule had room (one unit of each was taken), else the 1-based index
-- of the first rule without room (nothing was taken).
local member = ARGV[2]
local reserve = tonumber(ARGV[3])
local to_charge = {}
for i = 1, #KEYS do
    local at = 4 + (i - 1) * 4
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[at + 2])
    -- A rule already holding this token was charged by an earlier call (a replay).
    if not redis.call('ZSCORE', KEYS[i], member) then
        local used = redis.call('ZCOUNT', KEYS[i], ARGV[at + 1], '+inf')
        if used + 1 + reserve > tonumber(ARGV[at]) then
            return i
        end
        to_charge[#to_charge + 1] = i
    end
end
for _, i in ipairs(to_charge) do
    redis.call('ZADD', KEYS[i], ARGV[1], member)
    redis.call('PEXPIRE', KEYS[i], ARGV[4 + (i - 1) * 4 + 3])
end
return 0
