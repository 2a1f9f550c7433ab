-- Move one in-flight item to a dead-letter list, with its reason, and push
-- a failure result so the indexer records an "illegal backup"; fenced like
-- ack.lua (nothing happens if the item is no longer in flight).
--
-- KEYS[1]  the caller's in-flight list
-- KEYS[2]  the dead-letter list
-- KEYS[3]  the result list
-- KEYS[4]  the interruption-count hash
-- ARGV[1]  item
-- ARGV[2]  dead-letter entry (JSON)
-- ARGV[3]  result ('' = none)
-- Returns 1 if moved, 0 if fenced off.
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
if removed == 0 then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[3])
end
redis.call('HDEL', KEYS[4], redis.sha1hex(ARGV[1]))
return 1
