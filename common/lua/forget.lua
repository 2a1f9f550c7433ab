-- Forget a worker that is gone for good (a decommissioned node or
-- indexer): it leaves the workers set, and its state and control hashes go,
-- so `status` stops listing it and its node_down alert resolves.
--
-- Refused while anything could still depend on those keys: a live
-- heartbeat, an item in one of its in-flight lists (the reaper finds those
-- lists through the state hash: deleting it would strand the items), or a
-- result in its outbox. All checks and deletions are one atomic step.
--
-- KEYS[1]   the worker's alive key
-- KEYS[2]   the workers set
-- KEYS[3]   the worker's state hash
-- KEYS[4]   the worker's control hash
-- KEYS[5]   the worker's outbox list
-- KEYS[6..] every in-flight list of the worker
-- ARGV[1]   the worker id
-- Returns {code, n}: {1, 0} forgotten; {0, 0} nothing known of it;
-- {-1, 0} it is alive; {-2, n} n items in flight; {-3, n} n results in
-- its outbox.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {-1, 0}
end
local held = 0
for i = 6, #KEYS do
  held = held + redis.call('LLEN', KEYS[i])
end
if held > 0 then
  return {-2, held}
end
local pending = redis.call('LLEN', KEYS[5])
if pending > 0 then
  return {-3, pending}
end
local member = redis.call('SREM', KEYS[2], ARGV[1])
local hashes = redis.call('DEL', KEYS[3], KEYS[4])
if member == 0 and hashes == 0 then
  return {0, 0}
end
return {1, 0}
