-- Move one dead letter back to its queue, as one step: the entry leaves
-- the dead-letter list and its payload enters the queue together, or
-- nothing happens. Two operators clicking "requeue" on the same entry
-- push it once: the second LREM finds nothing.
--
-- KEYS[1]  the dead-letter list (<queue>:dead)
-- KEYS[2]  the queue
-- ARGV[1]  the dead-letter element, byte for byte
-- ARGV[2]  its payload (the original message, unchanged)
-- Returns 1 if moved, 0 if the element was no longer there.
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed == 0 then
  return 0
end
-- the pop end (right): it is the next message a worker takes
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
