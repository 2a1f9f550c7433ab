-- Fenced acknowledgement: remove items from the caller's in-flight list and,
-- for each one that was still there, push its result, in one atomic step.
--
-- A worker whose item was already re-queued (a zombie resumed after its
-- heartbeat expired) finds nothing to remove, so its late ack pushes nothing.
--
-- KEYS[1]  the caller's in-flight list
-- KEYS[2]  the list results go to (LPUSH, as the original does)
-- KEYS[3]  the interruption-count hash
-- ARGV     pairs: item, result ('' = acknowledge without a result)
-- Returns an array of 1 (acknowledged) / 0 (fenced off), one per pair.
local out = {}
for i = 1, #ARGV, 2 do
  local item = ARGV[i]
  local result = ARGV[i + 1]
  local removed = redis.call('LREM', KEYS[1], -1, item)
  if removed > 0 then
    if result ~= '' then
      redis.call('LPUSH', KEYS[2], result)
    end
    redis.call('HDEL', KEYS[3], redis.sha1hex(item))
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
