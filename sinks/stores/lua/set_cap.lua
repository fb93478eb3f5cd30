-- Set or change a budget's caps, keeping what was spent (Budgets.set_cap).
-- KEYS[1]: the budget hash. ARGV[1]: money cap; ARGV[2]: count cap ('' for unlimited).
redis.call('HSET', KEYS[1], 'configured', '1')
local fields = {'money_cap', 'count_cap'}
for i = 1, 2 do
    if ARGV[i] == '' then
        redis.call('HDEL', KEYS[1], fields[i])
    else
        redis.call('HSET', KEYS[1], fields[i], ARGV[i])
    end
end
return 0
