-- All-or-none spend across budgets, money and count (Budgets.try_spend_all).
-- KEYS[1..n]: budget hashes with fields configured, money_cap, count_cap (absent: unlimited),
-- money_spent, count_spent; KEYS[n + 1], when present: the spend token's key.
-- ARGV[1]: money; ARGV[2]: count; ARGV[3]: n; ARGV[4]: token time to live in milliseconds.
-- Amounts stay below 2^53, so Lua's doubles compare them exactly.
-- Returns 0 when spent (or already spent under the token), i when budget i had no room
-- (nothing spent), -i when budget i was never configured.
local n = tonumber(ARGV[3])
local money = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local token_key = KEYS[n + 1]
if token_key and redis.call('EXISTS', token_key) == 1 then
    return 0
end
for i = 1, n do
    local budget = redis.call('HMGET', KEYS[i],
        'configured', 'money_cap', 'count_cap', 'money_spent', 'count_spent')
    if not budget[1] then
        return -i
    end
    local money_spent = tonumber(budget[4] or '0')
    local count_spent = tonumber(budget[5] or '0')
    if budget[2] and money_spent + money > tonumber(budget[2]) then
        return i
    end
    if budget[3] and count_spent + count > tonumber(budget[3]) then
        return i
    end
end
for i = 1, n do
    redis.call('HINCRBY', KEYS[i], 'money_spent', ARGV[1])
    redis.call('HINCRBY', KEYS[i], 'count_spent', ARGV[2])
end
if token_key then
    redis.call('SET', token_key, '1', 'PX', ARGV[4])
end
return 0
