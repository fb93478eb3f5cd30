-- First settlement wins (LeaderboardStore.settle_once).
-- KEYS[1]: the period's settlement record.
-- ARGV[1]: the record to keep if none is; ARGV[2]: its time to live in milliseconds.
-- Returns {1, record} when this call wrote it, else {0, the record written first}.
local kept = redis.call('GET', KEYS[1])
if kept then
    return {0, kept}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, ARGV[1]}
