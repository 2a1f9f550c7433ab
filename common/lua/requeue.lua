-- Put a worker's in-flight items back on their source lists.
--
-- KEYS[1]            the worker's heartbeat key
-- KEYS[2]            the interruption-count hash
-- KEYS[3..]          triplets: in-flight list, its source list, its dead list
-- ARGV[1]            mode: 'expired' (only if the heartbeat is gone; counts an
--                    interruption), 'restart' (own items after a crash;
--                    counts), 'drain' (graceful shutdown; does not count)
-- ARGV[2]            interruptions after which an item is dead-lettered
-- ARGV[3]            now, unix ms
-- ARGV[4]            worker id
-- Returns {requeued, dead_lettered}, or -1 if the worker is alive.
local mode = ARGV[1]
if mode == 'expired' and redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local max = tonumber(ARGV[2])
local requeued, dead = 0, 0
for i = 3, #KEYS, 3 do
  local inflight, source, deadlist = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  while true do
    -- newest first from the left, appended on the right (the pop end), so
    -- the oldest interrupted item is taken again first
    local item = redis.call('LPOP', inflight)
    if not item then break end
    local h = redis.sha1hex(item)
    local count = 0
    if mode ~= 'drain' then
      count = redis.call('HINCRBY', KEYS[2], h, 1)
    end
    if mode ~= 'drain' and count >= max then
      local reason = 'poison message: interrupted ' .. count .. ' times (last holder ' .. ARGV[4] .. ', ' .. mode .. ')'
      redis.call('LPUSH', deadlist, cjson.encode({payload = item, reason = reason, time = tonumber(ARGV[3]), node = ARGV[4], queue = source}))
      redis.call('HDEL', KEYS[2], h)
      dead = dead + 1
    else
      redis.call('RPUSH', source, item)
      requeued = requeued + 1
    end
  end
end
return {requeued, dead}
