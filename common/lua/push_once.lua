-- Push a client message at most once: LPUSH it and set its marker in one
-- atomic step, or do nothing if the marker already exists.
--
-- A client that sees an error after sending (lost reply, timeout) cannot
-- know whether the push happened, so it spools the message and resends it
-- later; a crash between a successful resend and the removal of the spool
-- file resends it again. Both land here and find the marker, so the list
-- gets the message once. Marker and element are written by one script, so
-- an AOF or a replica never has one without the other.
--
-- The LPUSH comes before the SET: Redis does not roll back a script, so if
-- the LPUSH fails (WRONGTYPE…) no marker may be left behind, or the resend
-- would be skipped and the message lost.
--
-- KEYS[1]  marker key (Keys::sent(id))
-- KEYS[2]  the Redis list (the instance's redis_queue)
-- ARGV[1]  the message JSON
-- ARGV[2]  marker lifetime in seconds (dedup_ttl)
-- Returns 1 if pushed now, 0 if it had been pushed before.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[2]))
return 1
