-- Idempotent score increment (LeaderboardStore.add).
-- KEYS[1]: the period's scores (sorted set, member = player id, score = hundredths);
-- KEYS[2]: the period's reach times (hash, player id -> newest event time);
-- KEYS[3]: the period's applied tokens (set).
-- ARGV[1]: player id; ARGV[2]: delta (an integer below 2^53, exact in Lua's doubles);
-- ARGV[3]: token; ARGV[4]: event time of the increment, or '' when unknown;
-- ARGV[5]: time to live of the period's keys in milliseconds (refreshed on every add).
-- Returns 1 when the increment was applied, 0 when its token had been applied before.
if redis.call('SADD', KEYS[3], ARGV[3]) == 0 then
    return 0
end
redis.call('ZINCRBY', KEYS[1], ARGV[2], ARGV[1])
if ARGV[4] ~= '' then
    local previous = redis.call('HGET', KEYS[2], ARGV[1])
    if not previous or tonumber(ARGV[4]) > tonumber(previous) then
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
    end
end
for i = 1, 3 do
    redis.call('PEXPIRE', KEYS[i], ARGV[5])
end
return 1
