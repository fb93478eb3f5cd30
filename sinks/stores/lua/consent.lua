-- Record an opt-out or opt-in statement (SuppressionList.opt_out / opt_in).
-- KEYS[1]: the player's opt-out hash, fields "<channel>\31<product or *>" -> '1' out, '0' in.
-- ARGV[1]: channel; ARGV[2]: product, '' for the whole channel; ARGV[3]: '1' out, '0' in.
-- A channel-wide statement replaces every statement on that channel.
local separator = '\31'
if ARGV[2] ~= '' then
    redis.call('HSET', KEYS[1], ARGV[1] .. separator .. ARGV[2], ARGV[3])
    return 0
end
local scope = ARGV[1] .. separator
for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(name, 1, #scope) == scope then
        redis.call('HDEL', KEYS[1], name)
    end
end
if ARGV[3] == '1' then
    redis.call('HSET', KEYS[1], scope .. '*', '1')
end
return 0
