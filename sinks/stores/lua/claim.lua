-- First decision wins (DecisionLedger.claim).
-- KEYS[1]: the action's ledger key.
-- ARGV[1]: the decision; ARGV[2]: time to live in milliseconds.
-- Returns nil when this call recorded the decision, else the decision recorded before.
local recorded = redis.call('GET', KEYS[1])
if recorded then
    return recorded
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
