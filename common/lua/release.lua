-- Give one in-flight item back to its source list without counting an
-- interruption: the node could not take it now (for example the file would
-- not fit above its disk reserve), and another node should. Fenced like
-- ack.lua: nothing happens if the item is no longer in flight.
--
-- KEYS[1]  the caller's in-flight list
-- KEYS[2]  the item's source list
-- ARGV[1]  item
-- Returns 1 if given back, 0 if fenced off.
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
if removed == 0 then
  return 0
end
-- the pop end (right), so it is the next item any node takes from the list
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
